#!/usr/bin/env python3
"""A DNSBL zone served the way real ones are, for benches/filters.sh.

Usage: dnsbl-zone.py ADDRESS PORT ZONE

Answers over UDP, authoritatively, for ZONE: 2.0.0.127.ZONE is listed
(A 127.0.0.2, TXT "listed"); every other name in the zone is NXDOMAIN
with the zone's SOA in the authority section, whose minimum (300 s) is
how long resolvers may cache the "not listed" (RFC 2308), as with
zen.spamhaus.org and other public lists. Names outside the zone are
REFUSED. dnsmasq's `--local` zones answer NXDOMAIN without an SOA, which
no resolver may cache, so every session asks again: the bench runs both.
"""
import socket
import struct
import sys

NEGATIVE_TTL = 300
A, TXT, SOA = 1, 16, 6


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_question(packet):
    """(id, flags, qname, qtype, end of question) or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack(">HHH", packet[:6])
    if qdcount != 1:
        return None
    labels, i = [], 12
    while i < len(packet) and packet[i] != 0:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    if i + 4 > len(packet):
        return None
    qtype, _ = struct.unpack(">HH", packet[i : i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, i + 4


def record(name, rtype, ttl, rdata):
    return encode_name(name) + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answer(packet, zone):
    q = read_question(packet)
    if q is None:
        return None
    qid, flags, qname, qtype, end = q
    question = packet[12:end]
    rd = flags & 0x0100
    in_zone = qname == zone or qname.endswith("." + zone)
    listed = qname == "2.0.0.127." + zone
    answers, authority, rcode = [], [], 0
    if not in_zone:
        rcode = 5
    elif listed and qtype == A:
        answers.append(record(qname, A, 600, bytes([127, 0, 0, 2])))
    elif listed and qtype == TXT:
        answers.append(record(qname, TXT, 600, b"\x06listed"))
    elif not listed:
        rcode = 3
    if in_zone and not answers:
        soa = (
            encode_name("ns." + zone)
            + encode_name("hostmaster." + zone)
            + struct.pack(">IIIII", 1, 3600, 600, 86400, NEGATIVE_TTL)
        )
        authority.append(record(zone, SOA, NEGATIVE_TTL, soa))
    header = struct.pack(
        ">HHHHHH", qid, 0x8000 | 0x0400 | rd | rcode, 1, len(answers), len(authority), 0
    )
    return header + question + b"".join(answers) + b"".join(authority)


def main():
    address, port, zone = sys.argv[1], int(sys.argv[2]), sys.argv[3].lower().strip(".")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    while True:
        packet, peer = sock.recvfrom(4096)
        reply = answer(packet, zone)
        if reply is not None:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
