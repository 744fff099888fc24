"""RS256 JWT signature checks for the contract servers (Snowflake, Google):
the `cryptography` module when installed, else `openssl dgst -sha256 -verify`."""
import base64
import hashlib
import subprocess
import tempfile

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the openssl command is used instead
    HAVE_CRYPTOGRAPHY = False


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Verifier:
    """RS256 signatures and the key fingerprint, from a PEM public key."""

    def __init__(self, pem_path):
        self.pem_path = pem_path
        with open(pem_path, "rb") as f:
            pem = f.read()
        if HAVE_CRYPTOGRAPHY:
            self.key = serialization.load_pem_public_key(pem)
            der = self.key.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pem_path, "-outform", "DER"],
                                 capture_output=True, check=True).stdout
        self.fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()

    def verify(self, signing_input, sig):
        if HAVE_CRYPTOGRAPHY:
            try:
                self.key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                return False
        with tempfile.NamedTemporaryFile() as sf, tempfile.NamedTemporaryFile() as df:
            sf.write(sig)
            sf.flush()
            df.write(signing_input)
            df.flush()
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.pem_path,
                                "-signature", sf.name, df.name], capture_output=True)
            return r.returncode == 0
