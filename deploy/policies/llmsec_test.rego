# Unit tests of llmsec.rego (`llmsec policy test deploy/policies`).
package llmsec

clean := {"verdict": "allow", "threats": []}

test_a_clean_request_is_allowed if {
	decision.action == "allow" with input as {"analysis": clean, "request": {"role": "support", "tools": ["lookup_order"]}}
}

test_the_engines_block_stands if {
	d := decision with input as {"analysis": {"verdict": "block", "threats": []}, "request": {}}
	d.action == "block"
	d.reasons == ["the engine blocked the text"]
}

test_support_may_not_delete_accounts if {
	d := decision with input as {"analysis": clean, "request": {"role": "support", "tools": ["delete_account"]}}
	d.action == "block"
	d.reasons == ["role support may not use tool delete_account"]
}

test_admins_may_delete_accounts if {
	decision.action == "allow" with input as {"analysis": clean, "request": {"role": "admin", "tools": ["delete_account"]}}
}

test_a_request_without_a_role_may_use_no_tool if {
	decision.action == "block" with input as {"analysis": clean, "request": {"tools": ["lookup_order"]}}
}

test_the_tutor_blocks_weak_injection_findings if {
	weak := {"verdict": "allow", "threats": [{"type": "prompt_injection", "confidence": 0.35}]}
	decision.action == "block" with input as {"analysis": weak, "request": {"application": "kids-tutor"}}
	decision.action == "allow" with input as {"analysis": weak, "request": {"application": "helpdesk"}}
}

test_personal_data_from_eu_tenants_is_redacted if {
	pii := {"verdict": "allow", "threats": [{"type": "sensitive_data", "confidence": 0.9}]}
	d := decision with input as {"analysis": pii, "request": {"tenant": "acme-eu"}}
	d.action == "sanitize"
	d.obligations.redact == ["personal_data"]
	decision.action == "allow" with input as {"analysis": pii, "request": {"tenant": "acme-us"}}
}
