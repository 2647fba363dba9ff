# Kubernetes admission: every deployment names its owning team and cost centre.
package corpus.k8s_labels

required_labels := {"team", "cost-center"}

# METADATA
# title: Missing labels
deny contains sprintf("deployment %s is missing labels %v", [input.request.object.metadata.name, missing]) if {
	input.request.kind.kind == "Deployment"
	provided := {label | some label, _ in input.request.object.metadata.labels}
	missing := required_labels - provided
	count(missing) > 0
}
