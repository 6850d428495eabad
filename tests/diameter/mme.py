#!/usr/bin/env python3
"""A test MME for imeidb's Diameter S13 (EIR) listener.

It is a python-diameter 0.9.0 node (a Diameter stack imeidb did not write),
acting as a client peer: it connects to the EIR over TCP, completes CER/CEA,
sends one ME-Identity-Check-Request per check, decodes each answer with the
library's own parsing, exchanges watchdogs and observes the disconnect.

Install the dependency (Debian 12 python3 + python3-pip, or any pip >= 23.0.1):

    pip3 install --user --break-system-packages python-diameter==0.9.0

Usage:

    python3 tests/diameter/mme.py --connect HOST:PORT \
        --origin-host H --origin-realm R \
        --destination-realm DR --destination-host DH \
        --checks FILE.json [--idle-secs N] [--wait-dpr-secs M] \
        [--cer-style auth-app-id|vendor-specific] [--verbose]

FILE.json is a JSON list of objects:

    {"name": str,            # printed back; the only per-check text on stdout
     "imei": str,            # optional, Terminal-Information/IMEI
     "sv": str,              # optional, Terminal-Information/Software-Version
     "meid": hex str,        # optional, Terminal-Information/3GPP2-MEID
     "imsi": str,            # optional, User-Name
     "vsai": bool,           # optional, add Vendor-Specific-Application-Id
                             #   {10415, Auth 16777252} to the ECR (default no)
     "omit_terminal_information": bool}  # optional, send no Terminal-Information

Every stdout line is one JSON object, flushed at once:

    {"event":"cea", ...}              the CEA as the library decoded it (also
                                      printed when the EIR refused us, just
                                      before exiting 1)
    {"event":"eca","name":...}        one per check, in order
    {"event":"dwa","result_code":...} answer to the DWR this peer sent
    {"event":"dwr_from_eir","count":N,...}   DWRs the EIR sent during --idle-secs
    {"event":"waiting_for_dpr"}       only with --wait-dpr-secs > 0; stop the
                                      EIR now, it must send DPR
    {"event":"dpr","disconnect_cause":...}   the EIR's DPR (the library answered DPA)
    {"event":"dpr_sent"} / {"event":"dpa",...}   with --wait-dpr-secs 0 this peer
                                      disconnects itself: DPR out, DPA back
    {"event":"closed","reason":...}   the connection is gone; then exit 0

Exit codes: 0 all went as expected, 1 the EIR misbehaved or never came up
(the reason is on stderr), 2 bad arguments or missing dependency.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time

try:
    from diameter.message import constants
    from diameter.message.avp.grouped import (TerminalInformation,
                                              VendorSpecificApplicationId)
    from diameter.message.commands import (CapabilitiesExchangeRequest,
                                           MeIdentityCheckRequest)
    from diameter.node import Node, NotRoutable
    from diameter.node import peer as peer_mod
    from diameter.node.application import SimpleThreadingApplication
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"mme.py: cannot import python-diameter ({e}); install it with:\n"
        f"  pip3 install --user --break-system-packages python-diameter==0.9.0\n")
    sys.exit(2)

S13_APP_ID = constants.APP_3GPP_S13_S13  # 16777252
VENDOR_3GPP = constants.VENDOR_TGPP  # 10415
CE_DEADLINE_SECS = 10
ANSWER_TIMEOUT_SECS = 5

DISCONNECT_REASONS = {
    getattr(peer_mod, name): name[len("DISCONNECT_REASON_"):]
    for name in dir(peer_mod) if name.startswith("DISCONNECT_REASON_")
}


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> None:
    """Report on stderr and leave at once (library threads are not daemons)."""
    sys.stdout.flush()
    sys.stderr.write(f"mme.py: {message}\n")
    sys.stderr.flush()
    os._exit(code)


def text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def failed_avp_codes(failed_avps) -> tuple[list[int] | None, list[list[int]] | None]:
    """Top-level AVP codes inside every Failed-AVP, and the code paths to
    each leaf (a grouped AVP such as Terminal-Information is walked)."""
    if not failed_avps:
        return None, None
    codes: list[int] = []
    paths: list[list[int]] = []

    def walk(avp, prefix):
        path = prefix + [avp.code]
        children = None
        if avp.__class__.__name__ == "AvpGrouped":
            try:
                children = avp.value
            except Exception:
                children = None
        if children:
            for child in children:
                walk(child, path)
        else:
            paths.append(path)

    for failed in failed_avps:
        for avp in failed.additional_avps:
            codes.append(avp.code)
            walk(avp, [])
    return codes, paths


class ObservingNode(Node):
    """The library's Node, with hooks that record the base-protocol traffic
    it handles by itself (CEA, DWR/DWA, DPR/DPA, connection loss). Each hook
    calls the library's own handler, so its behaviour is unchanged."""

    def __init__(self, *args, cer_style: str = "auth-app-id", **kwargs):
        super().__init__(*args, **kwargs)
        self.cer_style = cer_style
        self.lock = threading.Lock()
        self.cea_msg = None
        self.cea_event = threading.Event()
        self.dwa_msg = None
        self.dwa_event = threading.Event()
        self.dwr_received = 0
        self.dwa_sent = []  # Result-Code of each DWA the library sent
        self.dpr_msg = None
        self.dpr_event = threading.Event()
        self.dpa_sent = None  # Result-Code of the DPA the library sent
        self.dpa_msg = None
        self.dpa_event = threading.Event()
        self.closed_reason = None
        self.closed_event = threading.Event()

    # --- outgoing -----------------------------------------------------
    def send_cer(self, conn):
        if self.cer_style == "auth-app-id":
            return super().send_cer(conn)
        # Same as Node.send_cer, but the application is advertised the way
        # many MMEs do: Supported-Vendor-Id 10415 and a
        # Vendor-Specific-Application-Id instead of a bare Auth-Application-Id.
        self.logger.info(f"{conn} sending CER (vendor-specific style)")
        msg = CapabilitiesExchangeRequest()
        msg.header.hop_by_hop_identifier = conn.hop_by_hop_seq.next_sequence()
        msg.header.end_to_end_identifier = self.end_to_end_seq.next_sequence()
        msg.origin_host = self.origin_host.encode()
        msg.origin_realm = self.realm_name.encode()
        msg.host_ip_address = conn.host_ip_address
        msg.vendor_id = self.vendor_id
        msg.product_name = self.product_name
        msg.origin_state_id = self.state_id
        msg.supported_vendor_id = [VENDOR_3GPP]
        msg.vendor_specific_application_id = [VendorSpecificApplicationId(
            vendor_id=VENDOR_3GPP, auth_application_id=S13_APP_ID)]
        self.send_message(conn, msg)

    def send_message(self, conn, message):
        super().send_message(conn, message)
        if message.header.is_request:
            return
        code = message.header.command_code
        if code == constants.CMD_DEVICE_WATCHDOG:
            with self.lock:
                self.dwa_sent.append(message.result_code)
        elif code == constants.CMD_DISCONNECT_PEER:
            with self.lock:
                self.dpa_sent = message.result_code

    # --- incoming -----------------------------------------------------
    def receive_cea(self, conn, message):
        self.cea_msg = message
        try:
            super().receive_cea(conn, message)
        finally:
            self.cea_event.set()

    def receive_dwr(self, conn, message):
        with self.lock:
            self.dwr_received += 1
        super().receive_dwr(conn, message)

    def receive_dwa(self, conn, message):
        self.dwa_msg = message
        try:
            super().receive_dwa(conn, message)
        finally:
            self.dwa_event.set()

    def receive_dpr(self, conn, message):
        self.dpr_msg = message
        try:
            super().receive_dpr(conn, message)
        finally:
            self.dpr_event.set()

    def receive_dpa(self, conn, message):
        self.dpa_msg = message
        try:
            super().receive_dpa(conn, message)
        finally:
            self.dpa_event.set()

    def remove_peer_connection(self, conn, disconnect_reason=peer_mod.DISCONNECT_REASON_UNKNOWN):
        super().remove_peer_connection(conn, disconnect_reason)
        if self.closed_reason is None:
            self.closed_reason = disconnect_reason
        self.closed_event.set()


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="python-diameter MME test peer for an S13 EIR")
    p.add_argument("--connect", required=True, metavar="HOST:PORT")
    p.add_argument("--origin-host", required=True)
    p.add_argument("--origin-realm", required=True)
    p.add_argument("--destination-realm", required=True)
    p.add_argument("--destination-host", required=True)
    p.add_argument("--checks", required=True, metavar="FILE.json")
    p.add_argument("--idle-secs", type=float, default=0.0)
    p.add_argument("--wait-dpr-secs", type=float, default=0.0)
    p.add_argument("--cer-style", choices=("auth-app-id", "vendor-specific"),
                   default="auth-app-id",
                   help="auth-app-id: the library's own CER (Auth-Application-Id "
                        "16777252); vendor-specific: Supported-Vendor-Id 10415 + "
                        "Vendor-Specific-Application-Id {10415, 16777252}")
    p.add_argument("--verbose", action="store_true",
                   help="library DEBUG logs and message dumps on stderr")
    args = p.parse_args(argv)

    host, sep, port = args.connect.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        p.error(f"--connect wants HOST:PORT, got {args.connect!r}")
    args.host = host.strip("[]")
    args.port = int(port)
    if args.idle_secs < 0 or args.wait_dpr_secs < 0:
        p.error("--idle-secs and --wait-dpr-secs must not be negative")

    try:
        with open(args.checks, encoding="utf-8") as f:
            checks = json.load(f)
    except (OSError, ValueError) as e:
        p.error(f"cannot read checks file {args.checks}: {e}")
    if not isinstance(checks, list):
        p.error("the checks file must hold a JSON list")
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("name"), str):
            p.error(f"check #{i} is not an object with a string \"name\"")
        for key in ("imei", "sv", "imsi", "meid"):
            if key in check and check[key] is not None and not isinstance(check[key], str):
                p.error(f"check {check['name']!r}: {key} must be a string")
        if check.get("meid") is not None:
            try:
                bytes.fromhex(check["meid"])
            except ValueError:
                p.error(f"check {check['name']!r}: meid is not hex")
    args.checks_list = checks
    return args


def cea_event(node: ObservingNode, conn) -> dict:
    msg = node.cea_msg
    vsai = [{"vendor_id": v.vendor_id,
             "auth_application_id": v.auth_application_id,
             "acct_application_id": v.acct_application_id}
            for v in (msg.vendor_specific_application_id or [])]
    auth_ids = list(msg.auth_application_id or [])
    failed_codes, _ = failed_avp_codes(
        [msg.failed_avp] if msg.failed_avp is not None else None)
    host_ips = []
    for addr in msg.host_ip_address or []:
        host_ips.append(addr[1] if isinstance(addr, tuple) else text(addr))
    return {
        "event": "cea",
        "result_code": msg.result_code,
        "e_bit": msg.header.is_error,
        "origin_host": text(msg.origin_host),
        "origin_realm": text(msg.origin_realm),
        "host_ip_address": host_ips,
        "vendor_id": msg.vendor_id,
        "product_name": text(msg.product_name),
        "origin_state_id": msg.origin_state_id,
        "firmware_revision": msg.firmware_revision,
        "supported_vendor_id": list(msg.supported_vendor_id or []),
        "auth_application_id": auth_ids,
        "acct_application_id": list(msg.acct_application_id or []),
        "vendor_specific_application_id": vsai,
        "inband_security_id": list(msg.inband_security_id or []),
        "error_message": text(msg.error_message),
        "failed_avp": failed_codes,
        "unknown_avps": [a.code for a in getattr(msg, "_additional_avps", [])],
        "s13_advertised": S13_APP_ID in auth_ids or any(
            v["auth_application_id"] == S13_APP_ID for v in vsai),
        # what the library itself concluded the two peers share
        "common_auth_application_ids": sorted(conn.auth_application_ids) if conn else None,
    }


def build_ecr(node: ObservingNode, args, check: dict) -> MeIdentityCheckRequest:
    msg = MeIdentityCheckRequest()
    msg.session_id = node.session_generator.next_id()
    msg.auth_session_state = constants.E_AUTH_SESSION_STATE_NO_STATE_MAINTAINED
    msg.origin_host = node.origin_host.encode()
    msg.origin_realm = node.realm_name.encode()
    msg.destination_host = args.destination_host.encode()
    msg.destination_realm = args.destination_realm.encode()
    if check.get("vsai"):
        msg.vendor_specific_application_id = VendorSpecificApplicationId(
            vendor_id=VENDOR_3GPP, auth_application_id=S13_APP_ID)
    if not check.get("omit_terminal_information"):
        ti = TerminalInformation()
        if check.get("imei") is not None:
            ti.imei = check["imei"]
        if check.get("sv") is not None:
            ti.software_version = check["sv"]
        if check.get("meid") is not None:
            ti.tgpp2_meid = bytes.fromhex(check["meid"])
        msg.terminal_information = ti
    if check.get("imsi") is not None:
        msg.user_name = check["imsi"]
    return msg


def eca_event(name: str, session_id: str, answer) -> dict:
    er = answer.experimental_result
    errors = answer.find_avps((constants.AVP_ERROR_MESSAGE, 0))
    error_message = None
    if errors:
        try:
            error_message = text(errors[0].value)
        except Exception:
            error_message = text(errors[0].payload)
    failed_codes, failed_paths = failed_avp_codes(answer.failed_avp)
    return {
        "event": "eca",
        "name": name,
        "session_id_echoed": answer.session_id == session_id,
        "result_code": answer.result_code,
        "experimental_result_code": er.experimental_result_code if er else None,
        "experimental_vendor_id": er.vendor_id if er else None,
        "equipment_status": answer.equipment_status,
        "failed_avp": failed_codes,
        "error_message": error_message,
        # extras
        "failed_avp_paths": failed_paths,
        "e_bit": answer.header.is_error,
        "auth_session_state": answer.auth_session_state,
        "origin_host": text(answer.origin_host),
        "origin_realm": text(answer.origin_realm),
    }


def ready_connection(node: ObservingNode, peer):
    conn = peer.connection
    if conn is None or conn.state not in peer_mod.PEER_READY_STATES:
        reason = DISCONNECT_REASONS.get(node.closed_reason, node.closed_reason)
        fail(f"the connection to the EIR is gone (reason {reason})")
    return conn


def main(argv) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="mme.py[%(name)s] %(levelname)s: %(message)s")
    # the library warns about every non-blocking connect; that is normal
    logging.getLogger("diameter.node").addFilter(
        lambda r: "socket not yet ready" not in r.getMessage())

    try:
        ip = socket.gethostbyname(args.host)
    except OSError as e:
        fail(f"cannot resolve {args.host}: {e}", 2)

    node = ObservingNode(args.origin_host, args.origin_realm,
                         vendor_ids=[VENDOR_3GPP], cer_style=args.cer_style)
    node.wakeup_interval = 1  # timer granularity and shutdown latency
    node.cea_timeout = CE_DEADLINE_SECS
    node.dwa_timeout = ANSWER_TIMEOUT_SECS
    # Never send a DWR on our own: the one DWR we send is explicit, and
    # our silence lets the EIR's own watchdog (Tw) fire during --idle-secs.
    node.idle_timeout = 10 ** 9

    peer = node.add_peer(
        f"aaa://{args.destination_host}:{args.port};transport=tcp",
        args.destination_realm, [ip], is_persistent=True)
    peer.reconnect_wait = 10 ** 9  # one connection attempt only
    app = SimpleThreadingApplication(S13_APP_ID, is_auth_application=True)
    node.add_application(app, [peer])
    node.start()

    # --- CER/CEA --------------------------------------------------------
    deadline = time.monotonic() + CE_DEADLINE_SECS
    while time.monotonic() < deadline:
        if node.cea_event.is_set() or node.closed_event.is_set():
            break
        time.sleep(0.02)
    if node.closed_event.is_set() and not node.cea_event.is_set():
        # A refusing EIR closes right after its CEA; the library may see the
        # close before its read thread has dispatched the CEA.
        node.cea_event.wait(0.5)
    if node.cea_msg is not None:
        # the library flags the connection ready inside its CEA handler
        emit(cea_event(node, peer.connection))
    if not app.is_ready.is_set():
        reason = DISCONNECT_REASONS.get(node.closed_reason, node.closed_reason)
        if node.cea_msg is not None:
            rc = node.cea_msg.result_code
            if rc != constants.E_RESULT_CODE_DIAMETER_SUCCESS:
                fail(f"the EIR refused our CER with Result-Code {rc}")
            fail("the library could not accept the CEA (see its log above)")
        if node.closed_event.is_set():
            fail(f"no CEA: the TCP connection to {ip}:{args.port} was refused, "
                 f"failed or was closed before capabilities exchange "
                 f"(library reason {reason}; see its log above)")
        fail(f"no CEA from {ip}:{args.port} within {CE_DEADLINE_SECS} s")

    # --- ECR/ECA --------------------------------------------------------
    for check in args.checks_list:
        name = check["name"]
        ecr = build_ecr(node, args, check)
        session_id = ecr.session_id
        try:
            answer = app.send_request(ecr, timeout=ANSWER_TIMEOUT_SECS)
        except TimeoutError:
            fail(f"no ECA for check {name!r} within {ANSWER_TIMEOUT_SECS} s")
        except NotRoutable as e:
            fail(f"cannot send the ECR for check {name!r}: {e}")
        except Exception as e:
            fail(f"ECR for check {name!r} failed: {e!r}")
        if answer.header.command_code != 324 or answer.header.is_request:
            fail(f"check {name!r}: the answer is not an ECA "
                 f"(command {answer.header.command_code})")
        emit(eca_event(name, session_id, answer))

    # --- our DWR --------------------------------------------------------
    conn = ready_connection(node, peer)
    node.dwa_event.clear()
    node.send_dwr(conn)
    if not node.dwa_event.wait(ANSWER_TIMEOUT_SECS):
        fail(f"no DWA within {ANSWER_TIMEOUT_SECS} s")
    dwa = node.dwa_msg
    emit({"event": "dwa", "result_code": dwa.result_code,
          "e_bit": dwa.header.is_error,
          "origin_host": text(dwa.origin_host),
          "origin_state_id": dwa.origin_state_id})

    # --- idle: does the EIR send DWR, does the library answer it? -------
    with node.lock:
        dwr_before, dwa_before = node.dwr_received, len(node.dwa_sent)
    idle_end = time.monotonic() + args.idle_secs
    while time.monotonic() < idle_end:
        if node.closed_event.is_set():
            ready_connection(node, peer)  # reports and exits
        time.sleep(min(0.1, max(0.0, idle_end - time.monotonic())))
    time.sleep(0.05 if args.idle_secs else 0)  # let a just-read DWR be answered
    with node.lock:
        answered = node.dwa_sent[dwa_before:]
        emit({"event": "dwr_from_eir",
              "count": node.dwr_received - dwr_before,
              "answered": len(answered),
              "answer_result_codes": answered,
              "total_since_connect": node.dwr_received,
              "idle_secs": args.idle_secs})
    ready_connection(node, peer)

    # --- disconnect -----------------------------------------------------
    if args.wait_dpr_secs > 0:
        emit({"event": "waiting_for_dpr"})
        dpr_deadline = time.monotonic() + args.wait_dpr_secs
        while not node.dpr_event.is_set():
            if node.closed_event.is_set():
                reason = DISCONNECT_REASONS.get(node.closed_reason, node.closed_reason)
                fail(f"the EIR closed the connection without a DPR (reason {reason})")
            if time.monotonic() >= dpr_deadline:
                fail(f"no DPR from the EIR within {args.wait_dpr_secs} s")
            time.sleep(0.02)
        with node.lock:
            dpa_rc = node.dpa_sent
        emit({"event": "dpr",
              "disconnect_cause": node.dpr_msg.disconnect_cause,
              "origin_host": text(node.dpr_msg.origin_host),
              "dpa_sent_result_code": dpa_rc})
        if dpa_rc is None:
            fail("the library did not answer the DPR")
        close_wait = max(5.0, dpr_deadline - time.monotonic())
        if not node.closed_event.wait(close_wait):
            fail(f"the EIR did not close the connection within {close_wait:.0f} s "
                 f"of our DPA")
    else:
        # We end the session ourselves: Node.stop sends DPR (cause REBOOTING)
        # and closes the socket once the DPA is in.
        ready_connection(node, peer)
        emit({"event": "dpr_sent", "disconnect_cause":
              constants.E_DISCONNECT_CAUSE_REBOOTING})
        threading.Thread(target=node.stop, kwargs={"wait_timeout": 10},
                         daemon=True).start()
        if not node.dpa_event.wait(ANSWER_TIMEOUT_SECS):
            fail(f"no DPA within {ANSWER_TIMEOUT_SECS} s")
        dpa = node.dpa_msg
        emit({"event": "dpa", "result_code": dpa.result_code,
              "e_bit": dpa.header.is_error,
              "origin_host": text(dpa.origin_host)})
        if not node.closed_event.wait(ANSWER_TIMEOUT_SECS):
            fail("the connection did not close after the DPA")

    emit({"event": "closed",
          "reason": DISCONNECT_REASONS.get(node.closed_reason, node.closed_reason)})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - any surprise is a failure
        import traceback
        traceback.print_exc()
        fail(f"unexpected error: {e!r}")
