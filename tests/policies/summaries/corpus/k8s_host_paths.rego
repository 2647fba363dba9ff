# Kubernetes admission: pods may mount only the host paths the platform team allows.
package corpus.k8s_host_paths

allowed_host_paths := ["/var/log", "/etc/ssl/certs"]

# METADATA
# title: Host path not allowed
deny contains sprintf("volume %s mounts host path %s", [v.name, v.hostPath.path]) if {
	some v in input.request.object.spec.volumes
	not v.hostPath.path in allowed_host_paths
}
