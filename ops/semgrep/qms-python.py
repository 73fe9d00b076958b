"""Fixtures for `semgrep --test ops/semgrep`: each `ruleid:` line must be found, each `ok:` line must not."""
# ruff: noqa
import hmac
import logging
import os
import pickle
import subprocess

import httpx
import jinja2
import jwt
import yaml

log = logging.getLogger("x")


def logs(ticket, user, password, token_id):
    # ruleid: qms-no-contact-or-secret-in-log-call
    log.info("sms to %s", ticket.phone)
    # ruleid: qms-no-contact-or-secret-in-log-call
    log.warning(f"mail to {ticket.email} failed")
    # ruleid: qms-no-contact-or-secret-in-log-call
    log.debug("login %s %s", user.name, password)
    # ok: qms-no-contact-or-secret-in-log-call
    log.info("sms for ticket %s", ticket.ticket_id)
    # ok: qms-no-contact-or-secret-in-log-call
    log.info("token %s issued", token_id)


def tls(url):
    # ruleid: qms-tls-verification-off
    httpx.get(url, verify=False)
    # ok: qms-tls-verification-off
    httpx.get(url, verify="/etc/qms/hub-ca.pem")


def tokens(raw, key):
    # ruleid: qms-jwt-decode-without-algorithms
    jwt.decode(raw, key)
    # ok: qms-jwt-decode-without-algorithms
    jwt.decode(raw, key, algorithms=["HS256"])


def shells(name):
    # ruleid: qms-shell-true
    subprocess.run(f"ping {name}", shell=True)
    # ruleid: qms-shell-true
    os.system("reboot")
    # ok: qms-shell-true
    subprocess.run(["ping", name], check=False)


def loads(data):
    # ruleid: qms-unsafe-deserialisation
    pickle.loads(data)
    # ruleid: qms-unsafe-deserialisation
    yaml.load(data)
    # ok: qms-unsafe-deserialisation
    yaml.safe_load(data)


def compare(given, provider):
    # ruleid: qms-secret-compared-with-equals
    if given == provider.webhook_secret:
        return True
    # ok: qms-secret-compared-with-equals
    return hmac.compare_digest(given, provider.webhook_secret)


def templates():
    # ruleid: qms-jinja-autoescape-off
    jinja2.Environment(autoescape=False)
    # ok: qms-jinja-autoescape-off
    return jinja2.Environment(autoescape=True)
