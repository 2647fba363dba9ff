# API authorization: tokens are not expired and carry the scope the route needs.
package corpus.api_tokens

route_scopes := {"GET": "read", "POST": "write", "DELETE": "admin"}

# METADATA
# title: Expired token
deny contains "the token has expired" if {
	time.parse_rfc3339_ns(input.token.expires_at) < time.parse_rfc3339_ns(input.now)
}

# METADATA
# title: Missing scope
deny contains sprintf("%s needs scope %s", [input.method, route_scopes[input.method]]) if {
	not route_scopes[input.method] in input.token.scopes
}

default allow := false

allow if count(deny) == 0
