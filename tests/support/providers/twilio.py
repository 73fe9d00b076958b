"""Twilio's Messages API stand-in: checks the form and Basic auth of `POST /2010-04-01/Accounts/{sid}/Messages.json`,
answers like Twilio (201 with a `sid`, or `{"code", "message", "more_info", "status"}`), and posts status callbacks
signed the way Twilio signs them (`X-Twilio-Signature`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from urllib.parse import parse_qsl, urlencode

import httpx

from tests.support.providers.stand_in import Answer, Recorded, StandIn


def _error(status: int, code: int, message: str, retry_after: str | None = None) -> Answer:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}  # fmt: skip
    headers = {"Content-Type": "application/json"} | ({"Retry-After": retry_after} if retry_after else {})
    return Answer(status, json.dumps(body).encode(), headers)


class TwilioStandIn(StandIn):
    """One Twilio account (`account_sid`, `auth_token`)."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-test-token") -> None:  # noqa: S107
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.sent: list[dict[str, str]] = []  # accepted forms

    def answer(self, kind: str, request: Recorded) -> Answer:
        """Validate like Twilio, then answer per the behaviour."""
        expected_auth = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != expected_auth:
            return _error(401, 20003, "Authenticate")
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return _error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl(request.body.decode()))
        if not form.get("To") or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return _error(400, 21604, "A 'To' phone number is required.")
        if kind == "429":
            return _error(429, 20429, "Too Many Requests", self.retry_after)
        if kind == "500":
            return _error(500, 20500, "Internal Server Error")
        if kind == "permanent":  # Twilio echoes the number: the adapter must not pass it on
            return _error(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
        sid = "SM" + secrets.token_hex(16)
        self.sent.append(form | {"sid": sid})
        body = {"sid": sid, "account_sid": self.account_sid, "to": form["To"], "from": form.get("From"),
                "body": form["Body"], "status": "queued", "num_segments": "1", "api_version": "2010-04-01",
                "error_code": None, "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}  # fmt: skip
        return Answer(201, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def sign(self, url: str, params: dict[str, str]) -> str:
        """Twilio's signature, computed here independently of the adapter."""
        data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
        return base64.b64encode(hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()

    def report(self, sid: str, status: str, error_code: str | None = None, tamper: bool = False) -> httpx.Response:
        """POST a status callback for an accepted message to its StatusCallback, signed (or signed then altered)."""
        form = next(f for f in self.sent if f["sid"] == sid)
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": form.get("From", ""),
                  "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status,
                  "To": form["To"]}  # fmt: skip
        if error_code:
            params["ErrorCode"] = error_code
        signature = self.sign(form["StatusCallback"], params)
        if tamper:
            params["MessageStatus"] = params["SmsStatus"] = "delivered"
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded",
                   "User-Agent": "TwilioProxy/1.1"}  # fmt: skip
        return httpx.post(form["StatusCallback"], content=urlencode(params), headers=headers)
