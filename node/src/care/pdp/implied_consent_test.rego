package knoop.implied_consent_test

import rego.v1

import data.knoop.implied_consent

request(method, interaction, type, consents) := {
	"action": {
		"request": {"method": method},
		"fhir_rest": {"interaction_type": interaction},
	},
	"resource": {"type": type, "id": "t1", "consents": consents},
	"context": {"implied_consent": "eoverdracht"},
}

eoverdracht := [{"scope": "eoverdracht"}]

test_a_consented_task_is_read_and_updated if {
	implied_consent.allow with input as request("GET", "read", "Task", eoverdracht)
	implied_consent.allow with input as request("PUT", "update", "Task", eoverdracht)
}

test_a_consented_composition_is_read_not_updated if {
	implied_consent.allow with input as request("GET", "read", "Composition", eoverdracht)
	not implied_consent.allow with input as request("PUT", "update", "Composition", eoverdracht)
}

test_nothing_without_the_consent_of_the_scope if {
	not implied_consent.allow with input as request("GET", "read", "Task", [])
	not implied_consent.allow with input as request("GET", "read", "Task", [{"scope": "bgz"}])
}

test_no_search_no_delete if {
	not implied_consent.allow with input as request("GET", "search-type", "Task", eoverdracht)
	not implied_consent.allow with input as request("DELETE", "delete", "Task", eoverdracht)
}
