#!/usr/bin/env python
import os
import sys
from pathlib import Path


def main() -> None:
    from dwvlist.envvars import env_file_load

    env_file_load(base_dir=Path(__file__).resolve().parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
