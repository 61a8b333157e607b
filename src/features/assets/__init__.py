"""Assets: uploads with an image pipeline, quotas, owner-checked serving and avatars."""

from pathlib import Path

from features.assets.handlers import AssetController, avatar, set_upload_request_limit
from features.assets.listeners import remove_files_of_deleted_user

routes = [AssetController, avatar]
template_dir = Path(__file__).parent / "templates"
listeners = [remove_files_of_deleted_user]
setup_hooks = [set_upload_request_limit]
cli_module = "features.assets.cli"  # its commands: imported only when the CLI starts
