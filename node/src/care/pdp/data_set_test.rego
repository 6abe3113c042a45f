# Tests of the built-in data set policy (data_set.rego), run by `cargo test`
# (care::pdp::tests::the_builtin_policy_tests_pass) on regorus, as `opa test` would run them,
# with the node's own table of data sets as data.
package knoop.data_set_test

import rego.v1

import data.knoop.data_set

request(interaction, type, operation, include, params) := {
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": sprintf("/%v", [type])},
		"fhir_rest": {
			"interaction_type": interaction,
			"operation": operation,
			"include": include,
			"search_params": params,
		},
	},
	"resource": {"type": type},
	"context": {"data_set": "bgz"},
}

test_a_bgz_query_is_allowed if {
	data_set.allow with input as request("search-type", "MedicationRequest", null,
		["MedicationRequest:medication"],
		{"category": [["http://snomed.info/sct|16076005"]], "patient": [["Patient/p1"]]})
}

test_or_values_and_includes_may_come_in_any_order if {
	data_set.allow with input as request("operation", "Observation", "lastn",
		["Observation:specimen", "Observation:has-member"],
		{"category": [["http://snomed.info/sct|275711006"]]})
	data_set.allow with input as request("operation", "Observation", "lastn", [],
		{"code": [["http://loinc.org|8308-9", "http://loinc.org|8302-2", "http://loinc.org|8306-3"]]})
}

test_a_query_without_its_include_or_with_another_parameter_is_denied if {
	not data_set.allow with input as request("search-type", "MedicationRequest", null, [],
		{"category": [["http://snomed.info/sct|16076005"]]})
	not data_set.allow with input as request("search-type", "MedicationRequest", null,
		["MedicationRequest:medication"],
		{"category": [["http://snomed.info/sct|16076005"]], "status": [["active"]]})
	some reason in data_set.denied with input as request("search-type", "Condition", null, [],
		{"code": [["http://snomed.info/sct|1"]]})
	contains(reason, "bgz")
}

test_a_search_is_not_the_operation if {
	not data_set.allow with input as request("search-type", "Observation", null, [],
		{"code": [["http://loinc.org|85354-9"]]})
	data_set.allow with input as request("operation", "Observation", "lastn", [],
		{"code": [["http://loinc.org|85354-9"]], "max": [["3"]]})
}

test_reads_of_the_data_sets_types_are_allowed if {
	data_set.allow with input as request("read", "DocumentReference", null, [], {})
	not data_set.allow with input as request("read", "ImagingStudy", null, [], {})
}

test_another_data_set_has_its_own_queries if {
	pzp := object.union(request("search-type", "Consent", null, [],
		{"scope": [["http://terminology.hl7.org/CodeSystem/consentscope|treatment"]],
		 "category": [["http://snomed.info/sct|129125009"]]}), {"context": {"data_set": "pzp"}})
	data_set.allow with input as pzp
	not data_set.allow with input as object.union(pzp, {"context": {"data_set": "bgz"}})
	not data_set.allow with input as object.union(pzp, {"context": {"data_set": "unknown"}})
}
