from shop_common.errors import ValidationError
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from svc_user import schemas
from shop_common.storage.cache import TokenVersionsProvider
from svc_user.credentials import Tokens
from svc_user.store import Sessions, Users
from svc_user.service_name import NAME


class UserService(ServiceBase):
    name = NAME
    package = "svc-user"

    users = Users()
    sessions = Sessions()
    tokens = Tokens()
    token_versions = TokenVersionsProvider()

    @rpc
    def register(self, body):
        return self.users.register(schemas.registration(body))

    @rpc
    def login(self, email, password):
        try:
            address = schemas.email(email)
        except ValidationError:
            address = ""  # an impossible email fails like an unknown one
        user = self.users.authenticate(address, password if isinstance(password, str) else "")
        return self._issue(user, self.sessions.start(user))

    @rpc
    def refresh(self, body):
        """A new access token and the session's next refresh token, for an unused refresh token."""
        user, refresh_token = self.sessions.rotate(schemas.refresh_request(body))
        return self._issue(user, refresh_token)

    @rpc
    def logout(self, user_id, body):
        """End one session (its refresh token's family) or, with everywhere, every session and access token."""
        refresh_token, everywhere = schemas.logout_request(body)
        version = self.sessions.end(user_id, refresh_token, everywhere)
        if everywhere and version is not None:  # the gateway refuses older access tokens from now on (until they would expire anyway)
            self.token_versions.publish(user_id, version, self.tokens.ttl_seconds)
        return {"logged_out": True, "everywhere": everywhere}

    @rpc
    def change_password(self, user_id, body):
        """A new password ends every session and access token; the caller gets a new session."""
        current_password, new_password = schemas.password_change(body)
        self.users.change_password(user_id, current_password, new_password)
        version = self.sessions.end(user_id, everywhere=True)
        self.token_versions.publish(user_id, version, self.tokens.ttl_seconds)
        user = self.users.get(user_id)
        return self._issue(user, self.sessions.start(user))

    def _issue(self, user, refresh_token):
        return self.tokens.issue(user, refresh_token, self.sessions.ttl_seconds)

    @rpc
    def get_user(self, user_id):
        return self.users.get(user_id)

    @rpc
    def update_user(self, user_id, changes):
        return self.users.update_profile(user_id, schemas.profile_changes(changes))

    @rpc
    def get_user_by_email(self, email):
        """Operator call: look a user up by email."""
        return self.users.get_by_email(schemas.email(email))
