# knoop's built-in policy for workflow tokens (spec: specs/data-sets.md §8): a token of a scope
# with implied consent (eOverdracht-sender: consent scope "eoverdracht") reaches no patient and
# no category, only the resources the data holder's own FHIR Consents name for the requesting
# organisation. The policy information point put those consents' scopes in
# input.resource.consents; the token's policy put its consent scope in
# input.context.implied_consent. Allowed: a read of such a resource, and an update of such a
# Task (the receiver accepts or completes the workflow task).
package knoop.implied_consent

import rego.v1

default allow := false

allow if {
	is_read
	consented
}

allow if {
	input.resource.type == "Task"
	is_update
	consented
}

default is_read := false

is_read if {
	input.action.request.method == "GET"
	input.action.fhir_rest.interaction_type == "read"
}

default is_update := false

is_update if {
	input.action.request.method == "PUT"
	input.action.fhir_rest.interaction_type == "update"
}

default consented := false

consented if {
	input.context.implied_consent != ""
	input.resource.id != ""
	some c in input.resource.consents
	c.scope == input.context.implied_consent
}

# Why not, for the reasons of a denial.
denied contains "only reads of single resources, and updates of a Task" if {
	not is_read
	not is_update
}

denied contains "updates are allowed on Task only" if {
	is_update
	input.resource.type != "Task"
}

denied contains sprintf("no active %v consent of the data holder names %v/%v for the requester", [
	input.context.implied_consent,
	input.resource.type,
	input.resource.id,
]) if {
	not consented
}
