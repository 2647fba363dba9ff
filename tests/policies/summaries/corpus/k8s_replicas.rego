# Kubernetes admission: production deployments keep enough replicas for the namespace's tier.
package corpus.k8s_replicas

min_replicas := {"gold": 3, "silver": 2, "bronze": 1}

tier := object.get(input.request.namespace_labels, "tier", "bronze")

# METADATA
# title: Too few replicas
deny contains sprintf("deployment %s has %d replicas; %s namespaces need %d", [input.request.object.metadata.name, input.request.object.spec.replicas, tier, min_replicas[tier]]) if {
	input.request.object.spec.replicas < min_replicas[tier]
}
