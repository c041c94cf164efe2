# An example decision policy for llm-security (package llmsec, rule
# `decision`). It combines three house rules with the engine's verdict:
#
#   1. role-based tool access: a role may only use the tools listed for it;
#   2. per-application thresholds: the children's tutor blocks any prompt
#      injection or jailbreak finding at confidence 0.3 or more, where the
#      engine's own policy would only flag it;
#   3. GDPR-minded redaction: personal data in a request from an EU tenant
#      is redacted before it goes anywhere (obligation `redact`).
#
# Check it with `llmsec policy test deploy/policies`; try it with
# `llmsec policy eval --policy deploy/policies --text "…" --request '{"role": "support"}'`.
package llmsec

# Tools each role may use; a role not listed may use none.
role_tools := {
	"support": {"lookup_order", "send_email"},
	"admin": {"lookup_order", "send_email", "delete_account"},
}

eu_tenants := {"acme-eu", "globex-de"}

strict_applications := {"kids-tutor"}

default decision := {"action": "allow", "reasons": []}

# Blocking reasons win over redaction.
decision := {"action": "block", "reasons": sort([r | some r in block_reasons])} if {
	count(block_reasons) > 0
}

decision := {
	"action": "sanitize",
	"reasons": sort([r | some r in sanitize_reasons]),
	"obligations": {"redact": sort([k | some k in redact_kinds])},
} if {
	count(block_reasons) == 0
	count(sanitize_reasons) > 0
}

block_reasons contains "the engine blocked the text" if input.analysis.verdict == "block"

block_reasons contains msg if {
	some tool in input.request.tools
	not tool in object.get(role_tools, object.get(input.request, "role", ""), set())
	msg := sprintf("role %v may not use tool %v", [object.get(input.request, "role", "(none)"), tool])
}

block_reasons contains msg if {
	input.request.application in strict_applications
	some t in input.analysis.threats
	t.type in {"prompt_injection", "jailbreak"}
	t.confidence >= 0.3
	msg := sprintf("%v finding at confidence %v in a strict application", [t.type, t.confidence])
}

sanitize_reasons contains "personal data from an EU tenant is redacted" if {
	input.request.tenant in eu_tenants
	count(redact_kinds) > 0
}

sanitize_reasons contains "the engine sanitized the text" if input.analysis.verdict == "sanitize"

redact_kinds contains "personal_data" if {
	some t in input.analysis.threats
	t.type == "sensitive_data"
}

redact_kinds contains "secret" if {
	some t in input.analysis.threats
	t.type == "secret_leak"
}
