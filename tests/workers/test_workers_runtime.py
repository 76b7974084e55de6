import uvloop

from api import cli


def test_loop_factory_uvloop_for_servers_asyncio_for_ops_commands() -> None:
    cli._load_command_modules()
    assert cli.loop_factory("api") is uvloop.new_event_loop
    assert cli.loop_factory("worker") is uvloop.new_event_loop
    assert cli.loop_factory("migrate") is None
    assert cli.loop_factory("dev") is None
