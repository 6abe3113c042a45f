# knoop's built-in policy for Notified Pull notifications (spec: specs/data-sets.md §8): a
# token of a notification scope (eOverdracht-receiver) lets the requesting organisation POST a
# notification Task to the organisation it was granted by, and nothing else. The Task
# (input.resource.content, STU3 or R4) must be a pull notification (TaskCode pull-notification),
# from the requester (requester.onBehalfOf in STU3, requester in R4, by URA) to the data holder
# (owner, by URA), based on the sender's workflow Task.
package knoop.notification

import rego.v1

ura_system := "http://fhir.nl/fhir/NamingSystem/ura"

task_code_system := "http://fhir.nl/fhir/NamingSystem/TaskCode"

default allow := false

allow if {
	input.action.request.method == "POST"
	input.action.fhir_rest.interaction_type == "create"
	input.resource.type == "Task"
	input.subject.organization.ura != ""
	is_pull_notification
	from_requester
	to_holder
	based_on_a_task
}

task := input.resource.content

default is_pull_notification := false

is_pull_notification if {
	some c in task.code.coding
	c.system == task_code_system
	c.code == "pull-notification"
}

# STU3: requester.onBehalfOf; R4: requester itself (an Organization by identifier).
requester_identifier := task.requester.onBehalfOf.identifier

requester_identifier := task.requester.identifier if not task.requester.onBehalfOf

default from_requester := false

from_requester if {
	requester_identifier.system == ura_system
	requester_identifier.value == input.subject.organization.ura
}

default to_holder := false

to_holder if {
	task.owner.identifier.system == ura_system
	task.owner.identifier.value == input.context.data_holder_organization_id
	input.context.data_holder_organization_id != ""
}

default based_on_a_task := false

based_on_a_task if {
	some b in task.basedOn
	startswith(b.reference, "Task/")
}

based_on_a_task if {
	some b in task.basedOn
	b.type == "Task"
	b.identifier.value != ""
}

# Why not, for the reasons of a denial.
denied contains "only a FHIR create of a Task (POST .../Task)" if {
	not input.action.request.method == "POST"
}

denied contains "the Task is not a pull-notification (http://fhir.nl/fhir/NamingSystem/TaskCode)" if {
	not is_pull_notification
}

denied contains "the Task's requester is not the token's organisation (by URA)" if {
	not from_requester
}

denied contains "the Task's owner is not this organisation (by URA)" if {
	not to_holder
}

denied contains "the Task is based on no workflow Task (basedOn)" if {
	not based_on_a_task
}
