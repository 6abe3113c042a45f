# Tests of the built-in data proxy policy (data_proxy.rego), run by `cargo test`
# (care::pdp::tests::the_builtin_policy_tests_pass) on regorus, as `opa test` would run them.
package knoop.data_proxy_test

import rego.v1

import data.knoop.data_proxy

request(interaction, type, categories) := {
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET"},
		"fhir_rest": {"interaction_type": interaction},
	},
	"resource": {"type": type},
	"context": {"granted_categories": categories},
}

test_a_search_of_a_granted_type_is_allowed if {
	data_proxy.allow with input as request("search-type", "MedicationStatement", ["medication"])
}

test_a_read_of_a_granted_type_is_allowed if {
	data_proxy.allow with input as request("read", "AllergyIntolerance", ["medication", "allergies"])
}

test_a_type_outside_the_grant_is_denied if {
	not data_proxy.allow with input as request("search-type", "Condition", ["medication"])
	some reason in data_proxy.denied with input as request("search-type", "Condition", ["medication"])
	contains(reason, "Condition")
}

test_nothing_granted_is_nothing_allowed if {
	not data_proxy.allow with input as request("search-type", "MedicationStatement", [])
}

test_other_interactions_are_denied if {
	not data_proxy.allow with input as request("history-type", "MedicationStatement", ["medication"])
	not data_proxy.allow with input as request("create", "MedicationStatement", ["medication"])
}

test_a_write_method_is_denied if {
	r := request("search-type", "MedicationStatement", ["medication"])
	not data_proxy.allow with input as object.union(r, {"action": object.union(r.action, {"request": {"method": "POST"}})})
}

test_the_patient_and_lastn_are_allowed_with_any_grant if {
	data_proxy.allow with input as request("search-type", "Patient", ["allergies"])
	not data_proxy.allow with input as request("search-type", "Patient", [])
	r := request("operation", "Observation", ["lab"])
	lastn := object.union(r, {"action": object.union(r.action, {"fhir_rest": {"interaction_type": "operation", "operation": "lastn"}})})
	data_proxy.allow with input as lastn
	not data_proxy.allow with input as object.union(lastn, {"context": {"granted_categories": ["medication"]}})
	other := object.union(r, {"action": object.union(r.action, {"fhir_rest": {"interaction_type": "operation", "operation": "everything"}})})
	not data_proxy.allow with input as other
}

test_other_observations_belong_to_the_summary if {
	data_proxy.allow with input as request("search-type", "Observation", ["summary"])
	not data_proxy.allow with input as request("search-type", "Observation", ["medication"])
}
