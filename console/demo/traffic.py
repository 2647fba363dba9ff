"""Realistic inputs for the two demo policies, so the console has decisions to show.

Pure Python and deterministic for a given random.Random. Roughly 70% of requests are
allowed, 20% denied for varied reasons and 5-10% held for approval. The constants
below mirror the demo Rego (console/demo/policies); keep them in step.
"""
from __future__ import annotations

import random

# Enforcement points ask Gavel's entrypoints, which apply rollout and exceptions (rollout/entrypoint.py).
AGENT_GATEWAY = "gavel_entry/agent_gateway/decision"
PLATFORM_CHANGES = "gavel_entry/platform_changes/decision"

TEAMS = ("support", "billing", "platform", "data", "people")
USERS = [{"id": f"u-{n}", "team": TEAMS[n % len(TEAMS)]} for n in range(101, 141)]  # 40 users
BLOCKED_USER_IDS = ("u-107", "u-118", "u-126", "u-133")  # suspended in agent_gateway.rego
ACTIVE_USERS = [u for u in USERS if u["id"] not in BLOCKED_USER_IDS]
EXCEPTION_USER_ID = "u-112"  # seed_demo grants this user a token-budget exception
BLOCKED_USERS = [u for u in USERS if u["id"] in BLOCKED_USER_IDS]

# tool -> (action, resource, example arguments)
TOOLS = {
    "kb.search": ("read", "kb/articles", [
        {"query": "reset two-factor device"},
        {"query": "how do I make text <b>bold</b> in a reply?"},  # harmless HTML: exercises escaping
        {"query": "refund policy for annual plans"},
    ]),
    "ticket.read": ("read", "helpdesk/tickets", [{"ticket_id": "T-48213"}, {"ticket_id": "T-50177"}]),
    "ticket.update": ("write", "helpdesk/tickets", [{"ticket_id": "T-48213", "status": "pending customer"}]),
    "ticket.delete": ("delete", "helpdesk/tickets", [{"ticket_id": "T-39001"}]),
    "sql.query": ("read", "db/analytics", [
        {"query": "SELECT plan, count(*) FROM accounts GROUP BY plan"},
        {"query": "SELECT id, status FROM orders WHERE created_at > now() - interval '1 day'"},
        {"query": "SELECT avg(first_response_minutes) FROM tickets"},
    ]),
    "invoice.read": ("read", "billing/invoices", [{"invoice_id": "INV-2024-0311"}]),
    "invoice.refund": ("write", "billing/invoices", [{"invoice_id": "INV-2024-0298", "amount": 49.0}]),
    "logs.search": ("read", "observability/logs", [{"query": "status:500 service:checkout"}]),
    "k8s.get": ("read", "k8s/payments-api", [{"kind": "pod", "namespace": "payments"}]),
    "k8s.delete": ("delete", "k8s/payments-api", [
        {"kind": "pod", "name": "payments-api-7f9c", "namespace": "payments"},
    ]),
    "deploy.rollback": ("write", "deploy/checkout", [{"service": "checkout", "to": "v412"}]),
    "warehouse.export": ("read", "warehouse/sales", [{"table": "sales_daily", "format": "csv"}]),
    "chart.render": ("read", "warehouse/sales", [{"title": "Weekly <b>revenue</b>", "kind": "bar"}]),
    "directory.lookup": ("read", "hr/directory", [{"name": "Ana Souza"}]),
    "calendar.read": ("read", "hr/calendar", [{"user": "u-112", "week": "2025-W14"}]),
}

AGENT_TOOLS = {  # mirrors agent_tools in agent_gateway.rego
    "support-bot": ("kb.search", "ticket.read", "ticket.update", "ticket.delete", "sql.query"),
    "billing-agent": ("invoice.read", "invoice.refund", "sql.query"),
    "devops-copilot": ("logs.search", "k8s.get", "k8s.delete", "deploy.rollback"),
    "data-analyst": ("sql.query", "warehouse.export", "chart.render"),
    "hr-assistant": ("directory.lookup", "calendar.read"),
}
AGENT_TYPES = {"support-bot": "assistant", "billing-agent": "assistant", "devops-copilot": "copilot",
               "data-analyst": "analyst", "hr-assistant": "assistant"}
DELETE_TOOLS = {agent: [t for t in tools if TOOLS[t][0] == "delete"] for agent, tools in AGENT_TOOLS.items()}

RISKY_QUERIES = (
    "SELECT email, password FROM users",
    "DROP TABLE audit_log",
    "SELECT * FROM orders WHERE id = '1'; -- bypass",
)


def _gateway(rng: random.Random, *, user=None, agent=None, tool=None, environment=None) -> dict:
    """A well-formed gateway request; keyword overrides make it break one rule."""
    agent = agent or rng.choice(list(AGENT_TOOLS))
    tool = tool or rng.choice([t for t in AGENT_TOOLS[agent] if TOOLS[t][0] != "delete"])
    action, resource, examples = TOOLS[tool]
    return {
        "user": dict(user or rng.choice(ACTIVE_USERS)),
        "agent": {"id": agent, "type": AGENT_TYPES.get(agent, "assistant")},
        "tool": tool,
        "action": action,
        "args": dict(rng.choice(examples)),
        "token_budget": rng.choice((500, 1200, 2000, 4000, 6000)),
        "environment": environment or rng.choice(("prod", "prod", "staging")),
        "resource": resource,
    }


def _gateway_denied(rng: random.Random) -> dict:
    reason = rng.choice(("blocked", "tool", "budget", "query", "query"))
    if reason == "blocked":
        return _gateway(rng, user=rng.choice(BLOCKED_USERS))
    if reason == "tool":  # an agent reaching for another agent's tool
        agent = rng.choice(list(AGENT_TOOLS))
        foreign = [t for t in TOOLS if t not in AGENT_TOOLS[agent]]
        request = _gateway(rng, agent=agent)
        tool = rng.choice(foreign)
        request.update(tool=tool, action=TOOLS[tool][0], resource=TOOLS[tool][1], args=dict(TOOLS[tool][2][0]))
        return request
    if reason == "budget":
        request = _gateway(rng)
        request["token_budget"] = rng.choice((12000, 32000, 128000))
        return request
    request = _gateway(rng, agent=rng.choice(("support-bot", "data-analyst", "billing-agent")), tool="sql.query")
    request["args"] = {"query": rng.choice(RISKY_QUERIES)}
    return request


def _gateway_delete(rng: random.Random, environment: str) -> dict:
    agent = rng.choice([a for a, tools in DELETE_TOOLS.items() if tools])
    return _gateway(rng, agent=agent, tool=rng.choice(DELETE_TOOLS[agent]), environment=environment)


QUEUE_NAMES = ("Billing", "Technical support", "Returns", "VIP <b>priority</b>", "Spanish line")
FIRST_NAMES = ("ana", "ben", "chen", "dara", "emil", "fatima", "goran", "hana")


def _change(rng: random.Random, resource_type: str, action: str = "create") -> dict:
    if resource_type == "queue":
        spec = {"name": rng.choice(QUEUE_NAMES), "sla_seconds": rng.choice((20, 30, 60, 120)),
                "routing_method": rng.choice(("skills", "bullseye", "longest_idle", "round_robin"))}
    elif resource_type == "user":
        name = rng.choice(FIRST_NAMES)
        spec = {"email": f"{name}.{rng.randint(1, 99)}@example.com",
                "role": rng.choice(("agent", "agent", "supervisor"))}
    else:
        spec = {"name": rng.choice(("call-recordings", "transcripts", "exports")),
                "encryption": rng.choice(("aes256", "kms"))}
    return {"action": action, "resource_type": resource_type,
            "requested_by": rng.choice(("ci-pipeline", "terraform-cloud")), "spec": spec}


def _change_denied(rng: random.Random) -> dict:
    reason = rng.choice(("sla", "routing", "email", "admin", "bucket"))
    if reason in ("sla", "routing"):
        change = _change(rng, "queue")
        if reason == "sla":
            change["spec"]["sla_seconds"] = rng.choice((0, -5))
        else:
            change["spec"].pop("routing_method")
        return change
    if reason == "bucket":
        change = _change(rng, "bucket")
        change["spec"]["encryption"] = "none"
        return change
    change = _change(rng, "user")
    if reason == "email":
        change["spec"]["email"] = f"{rng.choice(FIRST_NAMES)}@gmail.com"
    else:
        change["spec"]["role"] = "org_admin"  # and no ticket
    return change


def random_request(rng: random.Random) -> tuple[str, dict]:
    """(data path, input) for one simulated request to OPA."""
    roll = rng.random()
    if rng.random() < 0.75:
        if roll < 0.02:  # the analyst with an approved budget exception (seed_demo) runs long reports
            request = _gateway(rng, user=next(u for u in USERS if u["id"] == EXCEPTION_USER_ID))
            request["token_budget"] = rng.choice((12000, 16000))
            return AGENT_GATEWAY, request
        if roll < 0.70:
            return AGENT_GATEWAY, _gateway(rng)
        if roll < 0.73:  # staging deletes, and prod deletes a reviewer already approved
            request = _gateway_delete(rng, rng.choice(("staging", "prod")))
            if request["environment"] == "prod":
                reviewers = [u["id"] for u in ACTIVE_USERS if u["id"] != request["user"]["id"]]
                request["approval"] = {"approved_by": rng.choice(reviewers)}
            return AGENT_GATEWAY, request
        if roll < 0.80:
            return AGENT_GATEWAY, _gateway_delete(rng, "prod")
        return AGENT_GATEWAY, _gateway_denied(rng)
    if roll < 0.72:
        action = rng.choice(("create", "create", "update"))
        return PLATFORM_CHANGES, _change(rng, rng.choice(("queue", "user", "bucket")), action)
    if roll < 0.79:
        return PLATFORM_CHANGES, _change(rng, rng.choice(("queue", "user", "bucket")), "delete")
    if roll < 0.82:  # an admin grant with a change ticket is fine
        change = _change(rng, "user")
        change["spec"]["role"] = "telephony_admin"
        change["ticket"] = f"CHG-{rng.randint(1000, 9999)}"
        return PLATFORM_CHANGES, change
    return PLATFORM_CHANGES, _change_denied(rng)
