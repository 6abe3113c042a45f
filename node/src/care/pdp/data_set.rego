# knoop's built-in policy for data sets (spec: specs/data-sets.md §4): a token whose scope
# names a data set (input.context.data_set) may make exactly that data set's queries, and read
# resources of the types they are about. data.knoop.data_sets is the node's table of the data
# sets (node/src/care/data_sets.rs). The patient is the token's: the data proxy checks the
# patient, subject and identifier parameters, so they are not compared here.
package knoop.data_set

import rego.v1

default allow := false

allow if {
	input.action.fhir_rest.interaction_type == "read"
	input.resource.type in data.knoop.data_sets[input.context.data_set].types
}

allow if {
	some q in data.knoop.data_sets[input.context.data_set].queries
	is_query(q)
}

denied contains sprintf("%v is not one of the %v queries", [input.action.request.path, input.context.data_set]) if {
	not allow
}

# Whether the request is query q of the table: type, interaction, operation, the same
# _includes, and the same parameters with the same AND groups of OR values, in any order.
is_query(q) if {
	rest := input.action.fhir_rest
	q.type == input.resource.type
	q.interaction == rest.interaction_type
	q.operation == operation(rest)
	as_set(q.include) == as_set(object.get(rest, "include", []))
	normalised(q.params) == normalised(object.get(rest, "search_params", {}))
}

operation(rest) := op if {
	op := rest.operation
	is_string(op)
} else := ""

as_set(xs) := {x | some x in xs}

# The parameters as sets, without those the data proxy fixes (the patient) or that only
# bound the answer (max).
normalised(params) := {name: {as_set(group) | some group in groups} |
	some name, groups in params
	not name in {"patient", "subject", "identifier", "max"}
}
