# knoop's built-in policy for the data proxy (spec: specs/pdp.md §6): every request an access
# token brings to the proxy is decided here, in the national guide's input model. A request is
# allowed when it reads or searches a resource type of a data category the token granted (the
# token endpoint granted the categories the scope covers and the patient's consents allow).
# data.knoop.categories maps each category to its resource types (the proxy's table).
package knoop.data_proxy

import rego.v1

default allow := false

allow if {
	input.action.connection_type_code == "hl7-fhir-rest"
	input.action.request.method == "GET"
	input.action.fhir_rest.interaction_type in {"read", "search-type"}
	input.resource.type in granted_types
}

# The resource types of the categories the token granted.
granted_types contains t if {
	some c in input.context.granted_categories
	some t in data.knoop.categories[c]
}

# Why not, for the reasons of a denial.
denied contains "only reads and searches (GET) of FHIR resources" if {
	not input.action.fhir_rest.interaction_type in {"read", "search-type"}
}

denied contains sprintf("the token does not cover %v", [input.resource.type]) if {
	not input.resource.type in granted_types
}
