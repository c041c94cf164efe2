-- wrk script: POST a fixed JSON body to /api/security/analyze with a key.
-- LLMSEC_KEY and LLMSEC_BODY_FILE come from scripts/load.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LLMSEC_KEY")
local f = assert(io.open(os.getenv("LLMSEC_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
end
