from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField


class LoginForm(FlaskForm):
    email = EmailField("E-post", render_kw={"autocomplete": "username", "required": True})
    password = PasswordField("Passord", render_kw={"autocomplete": "current-password", "required": True})
