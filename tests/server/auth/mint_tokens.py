"""Mints test access tokens with an implementation independent of the one under test.

Uses Debian's python3-jwt (PyJWT) and python3-cryptography, so a token the C++ verifier accepts
was produced by someone else's JOSE code, not by a mirror image of the verifier. Run it with
/usr/bin/python3 (the system Python that has those packages):

    /usr/bin/python3 mint_tokens.py OUT_DIR SPECS_JSON_FILE

OUT_DIR gets, on first use, one private key per name below (PEM, reused on later runs), and
every run writes:
  OUT_DIR/keys.json    {"<key name>": <public JWK with kid = key name, use = sig>}
  OUT_DIR/tokens.json  {"<token name>": "<compact JWS>"} for each spec

SPECS_JSON_FILE holds {"<token name>": spec}. A spec's members, all optional except as noted:
  key      name of the signing key (ec, ec2, rsa, rsa1024, ed); required unless mode is "none"
  alg      JWS alg; default ES256 / RS256 / EdDSA by key type
  kid      header kid; default the key name; null omits it
  typ      header typ; default "at+jwt"; null omits it
  headers  further header members
  claims   the claim set (a JSON object), signed as PyJWT serializes it
  raw_payload  a string signed byte for byte instead of `claims` (for malformed JSON)
  mode     "sign" (default); "none" (alg none, empty signature); "hs256_public_key" (HS256 with
           the signing key's public PEM as the HMAC secret: the algorithm-confusion attack);
           "tamper_signature" (a valid token with one signature bit flipped)

The script prints nothing on success: tokens are written to files only, never to output.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

KEY_KINDS = {
    "ec": ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    "ec2": ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    "rsa": ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "rsa1024": ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    "ed": ("EdDSA", ed25519.Ed25519PrivateKey.generate),
}

ALGORITHM_FOR_JWK = {
    "ES256": jwt.algorithms.ECAlgorithm,
    "RS256": jwt.algorithms.RSAAlgorithm,
    "EdDSA": jwt.algorithms.OKPAlgorithm,
}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_make_keys(out_dir):
    keys = {}
    for name, (_, generate) in KEY_KINDS.items():
        path = os.path.join(out_dir, "key_%s.pem" % name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                keys[name] = serialization.load_pem_private_key(f.read(), password=None)
            continue
        key = generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
        keys[name] = key
    return keys


def public_jwk(name, key):
    alg = KEY_KINDS[name][0]
    jwk = ALGORITHM_FOR_JWK[alg].to_jwk(key.public_key())
    if isinstance(jwk, str):
        jwk = json.loads(jwk)
    if jwk["kty"] == "EC":
        # RFC 7518 6.2.1.2: x and y are the full size of a coordinate (32 bytes for P-256).
        # PyJWT 2.6 (Debian 12) drops leading zero bytes, about one key in a hundred, which a
        # conforming parser (this sidecar's, go-jose's) refuses: pad them.
        numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        jwk["x"] = b64url(numbers.x.to_bytes(size, "big"))
        jwk["y"] = b64url(numbers.y.to_bytes(size, "big"))
    jwk["kid"] = name
    jwk["use"] = "sig"
    return jwk


def header_for(spec, default_kid):
    headers = dict(spec.get("headers", {}))
    headers["typ"] = spec.get("typ", "at+jwt")  # None makes PyJWT drop it
    kid = spec.get("kid", default_kid)
    if kid is not None:
        headers["kid"] = kid
    return headers


def mint(spec, keys):
    mode = spec.get("mode", "sign")
    key_name = spec.get("key")
    headers = header_for(spec, key_name)
    claims = spec.get("claims", {})

    if mode == "none":
        return jwt.encode(claims, None, algorithm="none", headers=headers)

    key = keys[key_name]
    if mode == "hs256_public_key":
        # PyJWT (rightly) refuses a PEM key as an HMAC secret, so build the JWS by hand.
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256"}
        header.update({k: v for k, v in headers.items() if v is not None})
        signing_input = "%s.%s" % (
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
        )
        mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return "%s.%s" % (signing_input, b64url(mac))

    alg = spec.get("alg", KEY_KINDS[key_name][0])
    if "raw_payload" in spec:
        token = jwt.api_jws.encode(
            spec["raw_payload"].encode("utf-8"), key, algorithm=alg, headers=headers
        )
    else:
        token = jwt.encode(claims, key, algorithm=alg, headers=headers)

    if mode == "tamper_signature":
        head, payload, signature = token.split(".")
        raw = bytearray(b64url_decode(signature))
        raw[len(raw) // 2] ^= 0x01
        token = "%s.%s.%s" % (head, payload, b64url(bytes(raw)))
    elif mode != "sign":
        raise ValueError("unknown mode %r" % mode)
    return token


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: mint_tokens.py OUT_DIR SPECS_JSON_FILE\n")
        return 2
    out_dir, specs_path = argv[1], argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(specs_path) as f:
        specs = json.load(f)
    keys = load_or_make_keys(out_dir)
    write_json(
        os.path.join(out_dir, "keys.json"),
        {name: public_jwk(name, key) for name, key in keys.items()},
    )
    tokens = {}
    for name, spec in specs.items():
        try:
            tokens[name] = mint(spec, keys)
        except Exception as e:  # name the spec; never print a token
            sys.stderr.write("spec %r: %s: %s\n" % (name, type(e).__name__, e))
            return 1
    write_json(os.path.join(out_dir, "tokens.json"), tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
