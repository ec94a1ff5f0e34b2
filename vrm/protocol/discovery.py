"""Discovery records (docs/protocol.md §10): the LAN advert's DNS-SD TXT keys
(``lan_advert.py``), the ``_vrm.<domain>`` TXT record (``dns_record.py``) with its SRV
record and zone text (``dns_zone.py``), and the ``whoami`` proof (``whoami.py``), all
re-exported here. Pure: strings and bytes in and out; no sockets, zeroconf or dns here.
"""

from __future__ import annotations

from vrm.protocol.dns_record import (
    DNS_RECORD_VERSION,
    MAX_ENDPOINTS,
    DomainRecord,
    check_endpoint,
    encode_record_text,
    is_base_url,
    looks_like_domain,
    normalize_domain,
    parse_records,
    record_name,
    srv_name,
    txt_strings,
)
from vrm.protocol.dns_zone import ZoneRecord, render_zone, srv_target, zone_records
from vrm.protocol.lan_advert import (
    LAN_TXT_VERSION,
    SERVICE_TYPE,
    Advert,
    check_realm,
    encode_lan_txt,
    host_label,
    instance_label,
    parse_lan_txt,
)
from vrm.protocol.whoami import (
    MAX_WHOAMI_BYTES,
    NONCE_HEX_CHARS,
    WHOAMI_CONTEXT,
    WHOAMI_PATH,
    Whoami,
    parse_nonce,
    sign_whoami,
    verify_whoami,
)

__all__ = [
    "DNS_RECORD_VERSION",
    "LAN_TXT_VERSION",
    "MAX_ENDPOINTS",
    "MAX_WHOAMI_BYTES",
    "NONCE_HEX_CHARS",
    "SERVICE_TYPE",
    "WHOAMI_CONTEXT",
    "WHOAMI_PATH",
    "Advert",
    "DomainRecord",
    "Whoami",
    "ZoneRecord",
    "check_endpoint",
    "check_realm",
    "encode_lan_txt",
    "encode_record_text",
    "host_label",
    "instance_label",
    "is_base_url",
    "looks_like_domain",
    "normalize_domain",
    "parse_lan_txt",
    "parse_nonce",
    "parse_records",
    "record_name",
    "render_zone",
    "sign_whoami",
    "srv_name",
    "srv_target",
    "txt_strings",
    "verify_whoami",
    "zone_records",
]
