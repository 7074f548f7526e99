"""GBCS layer: tunnel commands, message headers, GBT blocks, Message and Alert Codes.

Pure codec, no I/O (GBCS v5.x sections 4.3, 7.2.4, 8.2, 13, 16).
"""

from hanlab.gbcs.codes import (
    ALERT_CODES,
    MESSAGE_CODES,
    UNKNOWN,
    CraFlag,
    MessageCodeInfo,
    alert_code_name,
    cra_flag_name,
    message_code_name,
    message_code_use_case,
    message_codes_for_use_case,
)
from hanlab.gbcs.eui64 import Eui64
from hanlab.gbcs.message import (
    GbcsMessage,
    GbcsParseError,
    GbtBlock,
    GbtReassembler,
    MacHeader,
    build_gbcs_message,
    build_gbt_blocks,
    parse_gbcs_message,
    reassemble_gbt_blocks,
)
from hanlab.gbcs.tunnel import (
    TunnelCommand,
    TunnelPayload,
    build_tunnel_payload,
    parse_tunnel_payload,
)

__all__ = [
    "ALERT_CODES",
    "MESSAGE_CODES",
    "UNKNOWN",
    "CraFlag",
    "Eui64",
    "GbcsMessage",
    "GbcsParseError",
    "GbtBlock",
    "GbtReassembler",
    "MacHeader",
    "MessageCodeInfo",
    "TunnelCommand",
    "TunnelPayload",
    "alert_code_name",
    "build_gbcs_message",
    "build_gbt_blocks",
    "build_tunnel_payload",
    "cra_flag_name",
    "message_code_name",
    "message_code_use_case",
    "message_codes_for_use_case",
    "parse_gbcs_message",
    "parse_tunnel_payload",
    "reassemble_gbt_blocks",
]
