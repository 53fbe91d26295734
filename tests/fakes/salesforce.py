"""A fake Salesforce REST API for SOQL: ``/services/data/vXX.X/query?q=`` with
``nextRecordsUrl`` paging, Bearer session ids (401 ``INVALID_SESSION_ID`` when expired), 400
``MALFORMED_QUERY``. It evaluates just enough SOQL for the tests: the ``CreatedDate`` range
and an aggregate by day, hour and Origin (or a plain record list)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.fakes.server import FakeServer, Request, Response

T0 = datetime(2026, 1, 5, tzinfo=UTC)
VERSION = "59.0"
RANGE = re.compile(r"CreatedDate >= (\S+Z) AND CreatedDate < (\S+Z)")
AGGREGATE_SOQL = (
    "SELECT DAY_ONLY(CreatedDate) day, HOUR_IN_DAY(CreatedDate) hour, Origin origin, "
    "COUNT(Id) cases FROM Case WHERE CreatedDate >= :since AND CreatedDate < :until "
    "GROUP BY DAY_ONLY(CreatedDate), HOUR_IN_DAY(CreatedDate), Origin"
)


def cases(hours: int = 6) -> list[dict]:
    out = []
    for h in range(hours):
        for i, origin in enumerate(("Web", "Phone")):
            for k in range(1 + i + h % 2):
                created = T0 + timedelta(hours=h, minutes=5 + k)
                out.append({"Id": f"500{h}{i}{k}", "Origin": origin, "Type": "Problem",
                            "CreatedDate": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                            "Owner": {"attributes": {"type": "User"}, "Name": "Ann"}})
    return out


def serve_salesforce(server: FakeServer, token: str, page_size: int = 5) -> dict:
    state = {"token": token, "soql": []}
    pages: dict[str, list[dict]] = {}
    base = f"/services/data/v{VERSION}/query"

    def auth_ok(req: Request) -> bool:
        return req.headers.get("authorization") == f"Bearer {state['token']}"

    def page(records: list[dict], start: int, key: str) -> Response:
        chunk = records[start:start + page_size]
        done = start + page_size >= len(records)
        body = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"{base}/{key}-{start + page_size}"
        return Response(200, body)

    def query(req: Request) -> Response:
        if not auth_ok(req):
            return Response(401, [{"message": "Session expired or invalid",
                                   "errorCode": "INVALID_SESSION_ID"}])
        soql = req.query.get("q", "")
        state["soql"].append(soql)
        m = RANGE.search(soql)
        if not soql.startswith("SELECT") or m is None:
            return Response(400, [{"message": "unexpected token: 'SELEC'",
                                   "errorCode": "MALFORMED_QUERY"}])
        lo, hi = (datetime.fromisoformat(m.group(i).replace("Z", "+00:00")) for i in (1, 2))
        sel = [c for c in cases()
               if lo <= datetime.strptime(c["CreatedDate"], "%Y-%m-%dT%H:%M:%S.000%z") < hi]
        if "Origin = 'Phone'" in soql:
            sel = [c for c in sel if c["Origin"] == "Phone"]
        if "GROUP BY" in soql:
            counts = Counter((c["CreatedDate"][:10], int(c["CreatedDate"][11:13]), c["Origin"])
                             for c in sel)
            records = [{"attributes": {"type": "AggregateResult"}, "day": d, "hour": h,
                        "origin": o, "cases": n} for (d, h, o), n in sorted(counts.items())]
        else:
            records = [{"attributes": {"type": "Case", "url": "/x"}, **c} for c in sel]
        key = f"01gD{len(pages):04d}"
        pages[key] = records
        return page(records, 0, key)

    def more(req: Request) -> Response:
        if not auth_ok(req):
            return Response(401, [{"message": "Session expired or invalid",
                                   "errorCode": "INVALID_SESSION_ID"}])
        tail = req.path.rsplit("/", 1)[1]
        if not tail:  # simple-salesforce calls .../query/?q=
            return query(req)
        key, start = tail.split("-")
        return page(pages[key], int(start), key)

    server.route("GET", base, query)
    server.route("GET", base + "/*", more)
    return state


SOAP_OK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>
<serverUrl>https://{host}/services/Soap/u/{version}/00D000000000001</serverUrl>
<sessionId>{session}</sessionId></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>
<faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password,
security token; or user locked out.</faultstring><detail><sf:LoginFault>
<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username,
password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
USERNAME_PASSWORD = re.compile(r"<n1:username>(.*?)</n1:username>\s*"
                               r"<n1:password>(.*?)</n1:password>", re.S)


def serve_salesforce_login(server: FakeServer, state: dict, username: str,
                           password_and_token: str) -> None:
    """The SOAP ``login()`` call of the partner API (what a username + password + security
    token login sends): each good login issues a new session id, which becomes the only one
    the REST API accepts (``state["token"]``, as :func:`serve_salesforce` checks it)."""
    state["logins"] = 0

    def login(req: Request) -> Response:
        m = USERNAME_PASSWORD.search(req.body.decode())
        if m is None or (m.group(1), m.group(2)) != (username, password_and_token):
            return Response(500, SOAP_FAULT, {"Content-Type": "text/xml"})
        state["logins"] += 1
        state["token"] = f"session-{state['logins']}"
        body = SOAP_OK.format(host=f"127.0.0.1:{server.port}", version=VERSION,
                              session=state["token"])
        return Response(200, body, {"Content-Type": "text/xml"})

    server.route("POST", f"/services/Soap/u/{VERSION}", login)
