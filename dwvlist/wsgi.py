import os
from pathlib import Path

from django.core.wsgi import get_wsgi_application

from dwvlist.envvars import env_file_load

env_file_load(base_dir=Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
application = get_wsgi_application()
