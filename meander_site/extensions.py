"""Unbound Flask extensions: bound to an app in create_app(); nothing connects at import time."""

from flask_limiter import Limiter
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from .core.client_ip import client_ip
from .core.schema import metadata

db = SQLAlchemy(metadata=metadata)
migrate = Migrate()
csrf = CSRFProtect()
mail = Mail()
limiter = Limiter(key_func=client_ip)
login_manager = LoginManager()
