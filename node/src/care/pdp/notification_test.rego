package knoop.notification_test

import rego.v1

import data.knoop.notification

ura(v) := {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": v}}

stu3_task := {
	"resourceType": "Task",
	"status": "requested",
	"intent": "proposal",
	"code": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCode", "code": "pull-notification"}]},
	"basedOn": [{"reference": "Task/workflow-1"}],
	"requester": {"agent": ura("11111111"), "onBehalfOf": ura("11111111")},
	"owner": ura("22222222"),
}

request(task) := {
	"subject": {"organization": {"ura": "11111111"}},
	"action": {"request": {"method": "POST"}, "fhir_rest": {"interaction_type": "create"}},
	"resource": {"type": "Task", "id": "", "content": task},
	"context": {"data_holder_organization_id": "22222222"},
}

test_a_stu3_notification_from_the_requester_to_the_holder if {
	notification.allow with input as request(stu3_task)
}

test_an_r4_notification if {
	r4 := object.union(object.remove(stu3_task, ["requester"]), {"requester": ura("11111111")})
	notification.allow with input as request(r4)
}

test_not_on_behalf_of_another if {
	t := object.union(stu3_task, {"requester": {"onBehalfOf": ura("33333333")}})
	not notification.allow with input as request(t)
}

test_not_to_another_owner if {
	not notification.allow with input as request(object.union(stu3_task, {"owner": ura("33333333")}))
}

test_not_another_kind_of_task if {
	t := object.union(stu3_task, {"code": {"coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskCode", "code": "other"}]}})
	not notification.allow with input as request(t)
}

test_not_without_a_workflow_task if {
	not notification.allow with input as request(object.remove(stu3_task, ["basedOn"]))
}
