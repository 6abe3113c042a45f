# knoop's built-in policy for the data proxy (spec: specs/pdp.md §6): every request an access
# token brings to the proxy is decided here, in the national guide's input model. A request is
# allowed when it reads or searches (or asks $lastn of) a resource type of a data category the
# token granted, or the token's patient (the token endpoint granted the categories the scope
# covers and the patient's consents allow). data.knoop.categories maps each category to the
# resource types the proxy serves for it; each resource served is checked against its own
# category too (specs/data-sets.md §5).
package knoop.data_proxy

import rego.v1

default allow := false

allow if {
	input.action.connection_type_code == "hl7-fhir-rest"
	input.action.request.method == "GET"
	is_read_or_search
	input.resource.type in granted_types
}

default is_read_or_search := false

is_read_or_search if input.action.fhir_rest.interaction_type in {"read", "search-type"}

# $lastn (FHIR R4 observation-operation-lastn): the latest Observations per code, a search.
is_read_or_search if {
	input.action.fhir_rest.interaction_type == "operation"
	input.action.fhir_rest.operation == "lastn"
	input.resource.type == "Observation"
}

# The resource types of the categories the token granted, and the patient itself.
granted_types contains t if {
	some c in input.context.granted_categories
	some t in data.knoop.categories[c]
}

granted_types contains "Patient" if count(input.context.granted_categories) > 0

# Why not, for the reasons of a denial.
denied contains "only reads and searches (GET) of FHIR resources, and Observation/$lastn" if {
	not is_read_or_search
}

denied contains sprintf("the token does not cover %v", [input.resource.type]) if {
	not input.resource.type in granted_types
}
