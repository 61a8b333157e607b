"""Assets: uploads with an image pipeline, quotas, owner-checked serving and avatars."""

from pathlib import Path

from features.assets.cli import assets_group
from features.assets.handlers import AssetController, avatar, set_upload_request_limit
from features.assets.listeners import remove_files_of_deleted_user

routes = [AssetController, avatar]
template_dir = Path(__file__).parent / "templates"
listeners = [remove_files_of_deleted_user]
cli_commands = [assets_group]
setup_hooks = [set_upload_request_limit]
