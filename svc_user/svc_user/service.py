from shop_common.errors import ValidationError
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from svc_user import schemas
from svc_user.dependencies import Tokens, Users
from svc_user.service_name import NAME


class UserService(ServiceBase):
    name = NAME
    package = "svc-user"

    users = Users()
    tokens = Tokens()

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
        return self.tokens.issue(user)

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
