# Tests of the built-in token policy (token.rego), with scopes as data, run by `cargo test`
# (care::pdp::tests::the_builtin_policy_tests_pass).
package knoop.token_test

import rego.v1

import data.knoop.token

scopes := {
	"medication-overview": {"purposes": ["regular-care", "emergency"], "roles": []},
	"discharge-summary": {"purposes": ["regular-care"], "roles": ["01.015"]},
}

test_a_configured_scope_and_purpose_is_allowed if {
	token.allow with input as {"scope": "medication-overview", "purpose": "emergency"}
		with data.knoop.scopes as scopes
}

test_an_unknown_scope_is_invalid if {
	some e in token.errors with input as {"scope": "everything", "purpose": "regular-care"}
		with data.knoop.scopes as scopes
	e.error == "invalid_scope"
}

test_a_purpose_the_scope_does_not_serve_is_invalid if {
	not token.allow with input as {"scope": "discharge-summary", "purpose": "emergency"}
		with data.knoop.scopes as scopes
}

test_a_role_the_scope_admits_is_allowed if {
	token.allow with input as {"scope": "discharge-summary", "purpose": "regular-care", "role": "01.015"}
		with data.knoop.scopes as scopes
}

test_another_role_is_denied if {
	some e in token.errors with input as {"scope": "discharge-summary", "purpose": "regular-care", "role": "30.000"}
		with data.knoop.scopes as scopes
	e.error == "access_denied"
}

test_without_a_role_yet_only_scope_and_purpose_count if {
	token.allow with input as {"scope": "discharge-summary", "purpose": "regular-care"}
		with data.knoop.scopes as scopes
}
