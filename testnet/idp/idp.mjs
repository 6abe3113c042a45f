// The OpenID Connect provider for patients, of the testnet (testnet/local.sh) and of the
// patient view's tests: panva's oidc-provider (a certified OpenID Connect provider from npm),
// standing in for DigiD behind an OpenID Connect broker. It gives
// the patient's BSN as the `bsn` claim of the ID token, signs with a fresh RSA key (RS256, as
// national brokers do), requires PKCE, and uses the package's own login pages.
//
//   node idp.mjs <port> <client id> <client secret> <redirect uris> <accounts JSON>
//
// <redirect uris> is one URI or several, separated by commas (one client, several nodes).
// <accounts JSON> maps a login name to a BSN: {"degroot": "999900171"}. An unknown login is
// refused. Prints "ready" once it listens on 127.0.0.1:<port>.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUris, accountsJson] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson);
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rsa-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris.split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'bsn'],
  claims: { openid: ['sub'], bsn: ['bsn'], acr: null, auth_time: null },
  // The BSN in the ID token itself (not only at the userinfo endpoint), as the patient service
  // reads it from there.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['knoop-test-idp-cookie-key-0123456789'] },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, bsn: accounts[id] };
      },
    };
  },
});
provider.on('server_error', (ctx, err) => console.error('idp server_error', err));
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
