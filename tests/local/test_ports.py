"""Free ports for the local stack: distinct within a process, and outside the kernel's ephemeral range."""

from __future__ import annotations

import socket

from monitoring import processes
from monitoring.genesis import DEFINITIONS
from monitoring.local.stack import on_free_ports


def test_free_port_never_hands_out_a_port_twice_and_stays_below_the_ephemeral_range() -> None:
    ports = [processes.free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
    assert all(processes.LOWEST_PORT <= port < processes._ephemeral_start() for port in ports)


def test_a_port_something_listens_on_is_not_free() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert processes.port_taken("127.0.0.1", holder.getsockname()[1])


def test_every_server_of_a_stack_gets_its_own_port() -> None:
    for _ in range(200):  # a stack asks for all its ports before any server binds one
        definitions = on_free_ports(DEFINITIONS.with_profile("compressed"), peers=2)
        addresses = [server.address for server in definitions.servers]
        assert len(set(addresses)) == len(addresses)
