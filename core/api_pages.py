"""API pages whose count stops at a limit, for lists too long to count on every request."""
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class CappedPagination(PageNumberPagination):
    """Its Django paginator counts up to `count_limit` + 1 and has `capped`: the answer's
    `count_capped` then says more match than `count` and the pages hold."""

    count_limit: int
    counted = "items"  # for the schema: "more decisions match"
    beyond = "narrow the search"  # what gives the rest

    def read_on(self, last) -> str | None:
        """The `before` value that reads on after `last`, the last page's last item; None: it cannot."""
        return None

    def get_next_link(self):
        link = super().get_next_link()
        if link is None and self.page.paginator.capped and self.page.object_list:
            # Past the counted pages, as the page's last Older link: after this page's last item.
            before = self.read_on(self.page.object_list[-1])
            if before is not None:
                url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
                return replace_query_param(url, "before", before)
        return link

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
