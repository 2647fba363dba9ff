"""API pages whose count stops at a limit, for lists too long to count on every request."""
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class CappedPagination(PageNumberPagination):
    """Its Django paginator counts up to `count_limit` + 1 and has `capped`: the answer's
    `count_capped` then says more match than `count` and the pages hold."""

    count_limit: int
    counted = "items"  # for the schema: "more decisions match"
    beyond = "narrow the search"  # what gives the rest

    def get_paginated_response(self, data):
        paginator = self.page.paginator
        return Response({"count": paginator.count, "count_capped": paginator.capped,
                         "next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count_capped"] = {"type": "boolean", "description": (
            f"True when counting stopped past {self.count_limit:,}: more {self.counted} match than count "
            f"and the pages hold; {self.beyond}.")}
        answer["required"].append("count_capped")
        return answer
