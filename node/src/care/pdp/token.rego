# knoop's built-in token policy (spec: specs/pdp.md §6, specs/tokens.md §3): whether a token may
# be granted for a scope at all: the scope is configured, the purpose is one it serves, and the
# professional's role one it admits. data.knoop.scopes holds the configured scopes ([[policy]]).
# What a token then grants (the categories the patient's consents allow at each holder, break
# the glass) is the consent rules' decision, not this policy's.
package knoop.token

import rego.v1

default allow := false

allow if count(errors) == 0

scope := data.knoop.scopes[input.scope]

errors contains {"error": "invalid_scope", "description": sprintf("unknown scope %v", [input.scope])} if {
	not data.knoop.scopes[input.scope]
}

errors contains {
	"error": "invalid_scope",
	"description": sprintf("scope %v is not for purpose %v", [input.scope, input.purpose]),
} if {
	not input.purpose in scope.purposes
}

errors contains {
	"error": "access_denied",
	"description": sprintf("role %v may not use scope %v", [input.role, input.scope]),
} if {
	is_string(input.role)
	count(scope.roles) > 0
	not input.role in scope.roles
}
