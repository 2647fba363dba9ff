# Kubernetes admission: no privileged containers, images from the company registry only.
package corpus.k8s_privileged

# METADATA
# title: Privileged container
deny contains sprintf("container %s must not run privileged", [c.name]) if {
	input.request.kind.kind == "Pod"
	some c in input.request.object.spec.containers
	c.securityContext.privileged == true
}

# METADATA
# title: Untrusted registry
deny contains sprintf("image %s is not from registry.acme.io", [c.image]) if {
	some c in input.request.object.spec.containers
	not startswith(c.image, "registry.acme.io/")
}
