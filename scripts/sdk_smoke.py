#!/usr/bin/env python3
"""Checks that the official Smartcar Python SDK works unchanged against `vtriage sim`.

Usage:
    vtriage sim --port 18777 --write-tokens /tmp/tokens.csv &
    pip install smartcar
    python3 scripts/sdk_smoke.py http://127.0.0.1:18777 /tmp/tokens.csv [AMT]

Exits 0 when every check passed, 1 otherwise, printing one line per check.
"""

import csv
import json
import os
import sys
import urllib.request

ORIGIN = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18777"
TOKENS = sys.argv[2] if len(sys.argv) > 2 else "/tmp/tokens.csv"
AMT = sys.argv[3] if len(sys.argv) > 3 else "sim-amt"

# The SDK reads its origins at import time.
os.environ["SMARTCAR_API_ORIGIN"] = ORIGIN
os.environ["SMARTCAR_MANAGEMENT_API_ORIGIN"] = ORIGIN
os.environ["SMARTCAR_CONNECT_ORIGIN"] = ORIGIN

import smartcar  # noqa: E402
from smartcar.exception import SmartcarException  # noqa: E402

failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + (f"  ({detail})" if detail else ""))
    if not condition:
        failures.append(name)


def expect_error(name, call, error_type, code, status):
    try:
        result = call()
    except SmartcarException as e:
        check(
            name,
            e.type == error_type and e.code == code and e.status_code == status and e.request_id,
            f"{e.type}:{e.code} {e.status_code} resolution={e.resolution} retry_after={getattr(e, 'retry_after', None)}",
        )
        return e
    check(name, False, f"no exception, got {result}")
    return None


with urllib.request.urlopen(f"{ORIGIN}/_sim/fleet") as r:
    fleet = json.load(r)
with open(TOKENS, newline="") as f:
    tokens = {row["user_id"]: row["access_token"] for row in csv.DictReader(f)}


def vehicle_in(situation, tesla=None):
    for v in fleet:
        if v["situation"] == situation and (tesla is None or (v["make"] == "TESLA") == tesla):
            return smartcar.Vehicle(v["vehicleId"], tokens[v["userId"]]), v
    raise SystemExit(f"no {situation} vehicle in the fleet")


# Management API: page every connection with the SDK's cursor handling.
seen, cursor, pages = [], None, 0
while True:
    paging = {"limit": 50} if cursor is None else {"limit": 50, "cursor": cursor}
    page = smartcar.get_connections(AMT, paging=paging)
    seen.extend(page.connections)
    pages += 1
    cursor = page.paging.cursor
    if not cursor or pages > 1000:
        break
check("get_connections pages through the whole fleet", len(seen) == len(fleet), f"{len(seen)} of {len(fleet)} in {pages} pages")
dates = [c.connected_at for c in seen]
check("connections come newest first", dates == sorted(dates, reverse=True))
one = smartcar.get_connections(AMT, filter={"vehicle_id": fleet[0]["vehicleId"]})
check("get_connections filters by vehicle", [c.vehicle_id for c in one.connections] == [fleet[0]["vehicleId"]])
expect_error("get_connections with a wrong AMT", lambda: smartcar.get_connections("wrong"), "AUTHENTICATION", None, 401)

# A healthy Tesla: every call the SDK offers.
# Vehicle.request() has a mutable default `headers={}` that keeps the first caller's Authorization
# header for every later call (SDK 6.19.1); pass a fresh dict each time.
vehicle, truth = vehicle_in("healthy", tesla=True)
user = smartcar.get_user(vehicle.access_token)
check("get_user", user.id == truth["userId"], user.id)
vehicles = smartcar.get_vehicles(vehicle.access_token, paging={"limit": 1, "offset": 0})
check("get_vehicles pages", vehicles.paging.offset == 0 and len(vehicles.vehicles) == 1, str(vehicles.paging))
attrs = vehicle.attributes()
check("attributes", (attrs.id, attrs.make, attrs.model) == (truth["vehicleId"], truth["make"], truth["model"]), f"{attrs.make} {attrs.model} {attrs.year}")
check("vin", vehicle.vin().vin == truth["vin"])
perms = vehicle.permissions()
check("permissions", "read_odometer" in perms.permissions, f"{perms.paging}")
odo = vehicle.odometer()
check("odometer with meta", odo.distance > 0 and odo.meta.data_age is not None and odo.meta.request_id, f"{odo.distance} km, data age {odo.meta.data_age}")
loc = vehicle.location()
check("location", -90 <= loc.latitude <= 90, f"{loc.latitude}, {loc.longitude}")
batch = vehicle.batch(["/odometer", "/location"])
check("batch", batch.odometer().distance == odo.distance and batch.location().latitude == loc.latitude)
vk = vehicle.request("GET", "tesla/virtual_key", headers={})
check("request tesla/virtual_key", vk.body == {"isPaired": True}, str(vk.body))
access = vehicle.request("GET", "tesla/user/access", headers={})
check("request tesla/user/access", "vehicle_location" in access.body["permissions"], str(access.body))

# Errors come out as SmartcarException with type, code, resolution and retry_after.
vehicle, _ = vehicle_in("virtual-key-missing")
e = expect_error("virtual key missing", vehicle.odometer, "CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED", 400)
check("virtual key link in resolution", e is not None and e.resolution == {"type": "ACTION_REQUIRED", "url": "https://www.tesla.com/_ak/smartcar.com"})
check("suggested user message", e is not None and bool(e.suggested_user_message))
batch = vehicle.batch(["/odometer", "/location"])
expect_error("virtual key missing inside batch", batch.location, "CONNECTED_SERVICES_ACCOUNT", "VIRTUAL_KEY_REQUIRED", 400)
check("isPaired false", vehicle.request("GET", "tesla/virtual_key", headers={}).body == {"isPaired": False})

vehicle, _ = vehicle_in("location-permission-missing")
expect_error("Tesla location scope missing", vehicle.location, "PERMISSION", None, 403)

vehicle, _ = vehicle_in("token-expired")
expect_error("expired token", vehicle.attributes, "AUTHENTICATION", None, 401)

vehicle, _ = vehicle_in("rate-limited")
e = expect_error("rate limited", vehicle.odometer, "RATE_LIMIT", "VEHICLE", 429)
check("retry_after from the header", e is not None and str(getattr(e, "retry_after", None)) == "1800")
e = expect_error("rate limited inside batch", vehicle.batch(["/odometer"]).odometer, "RATE_LIMIT", "VEHICLE", 429)
check("retry_after inside batch", e is not None and str(getattr(e, "retry_after", None)) == "1800")

vehicle, _ = vehicle_in("oem-authentication-failed")
e = expect_error("OEM authentication failed", vehicle.location, "CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED", 400)
check("re-auth link", e is not None and "/oauth/reauthenticate?" in (e.resolution.get("url") or ""), e.resolution.get("url") if e else "")

vehicle, _ = vehicle_in("quota-exhausted")
expect_error("monthly quota", vehicle.odometer, "BILLING", "VEHICLE_REQUEST_LIMIT", 430)

vehicle, _ = vehicle_in("healthy", tesla=False)
expect_error("Tesla endpoint on another make", lambda: vehicle.request("GET", "tesla/virtual_key", headers={}), "COMPATIBILITY", "MAKE_NOT_COMPATIBLE", 501)

print(f"\n{len(failures)} failed" if failures else "\nall checks passed")
sys.exit(1 if failures else 0)
