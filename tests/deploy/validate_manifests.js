'use strict';
// Validates the rendered Kubernetes manifests of each overlay (kubectl kustomize output):
// every object against the Kubernetes 1.33 OpenAPI schema (kubernetes-models) with unknown
// fields rejected, then the deployment invariants of docs/deploy.md. Then it breaks each
// invariant in a copy of the objects and checks that the break is reported, so a check that
// never fires fails too.
//
//   node validate_manifests.js --alerts ALERTS.yaml --metrics-source SIDECAR.cc \
//       --config-out DIR NAME=RENDERED.yaml...
//
// Writes each overlay's sidecar configuration (from its ConfigMap) to DIR/NAME.yaml, for
// `secret-resolver --check-config`. Exit status 0 when everything holds, 1 otherwise.
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const SIDECAR = 'secret-resolver';

function parseArgs(argv) {
  const args = { overlays: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--alerts') args.alerts = argv[++i];
    else if (a === '--metrics-source') args.metricsSource = argv[++i];
    else if (a === '--config-out') args.configOut = argv[++i];
    else if (a.includes('=')) {
      const [name, file] = a.split('=', 2);
      args.overlays.push({ name, file });
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function loadObjects(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((o) => o !== null);
}

function id(o) {
  return `${o.kind}/${o.metadata && o.metadata.name}`;
}

// ---- Schema ----

function schemaProblems(o) {
  if (!o || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
    return [`object without apiVersion/kind: ${JSON.stringify(o).slice(0, 80)}`];
  }
  let Model;
  try {
    Model = require(`kubernetes-models/${o.apiVersion}/${o.kind}`)[o.kind];
  } catch (e) {
    return [`${id(o)}: no Kubernetes schema for ${o.apiVersion} ${o.kind}`];
  }
  try {
    new Model(o).validate();
    return [];
  } catch (e) {
    return [`${id(o)}: schema: ${e.message}`];
  }
}

// ---- Unknown fields ----
// The compiled validators accept fields the schema does not know (the Kubernetes OpenAPI
// schema leaves additionalProperties open, and the API server would drop such a field
// silently). A misspelt field is a setting that never takes effect, so fields are checked
// against the property lists of the package's type declarations (kubeconform's -strict).

const modelsDir = path.dirname(require.resolve('kubernetes-models/package.json'));
const nodeModules = path.dirname(modelsDir);
const interfaces = new Map();  // .d.ts path -> {props: Map(name -> type ref or null)} or null

function resolveDts(from, spec) {
  const base = spec.startsWith('.') ? path.join(path.dirname(from), spec) : path.join(nodeModules, spec);
  for (const f of [base + '.d.ts', path.join(base, 'index.d.ts')]) if (fs.existsSync(f)) return f;
  return null;
}

function loadInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  interfaces.set(file, null);
  const text = fs.readFileSync(file, 'utf8');
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) imports.set(m[1], m[2]);
  const start = text.search(/^export interface I\w+( extends [\w, ]+)? \{$/m);
  if (start < 0) return null;
  const body = text.slice(start, text.indexOf('\n}\n', start));
  const props = new Map();
  for (const m of body.matchAll(/^ {4}"([^"]+)"\??: (.*);?$/gm)) {
    const type = m[2].replace(/;$/, '');
    const ref = type.match(/^(?:Array<)?(\w+)>?$/);
    const target = ref && imports.has(ref[1]) ? resolveDts(file, imports.get(ref[1])) : null;
    props.set(m[1], target);
  }
  const result = { props };
  interfaces.set(file, result);
  return result;
}

function unknownFields(value, file, where, out) {
  const iface = file && loadInterface(file);
  if (!iface || value === null || typeof value !== 'object') return;
  const items = Array.isArray(value) ? value : [value];
  items.forEach((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return;
    const at = Array.isArray(value) ? `${where}[${i}]` : where;
    for (const [key, child] of Object.entries(item)) {
      if (!iface.props.has(key)) out.push(`${at}: unknown field "${key}"`);
      else unknownFields(child, iface.props.get(key), `${at}.${key}`, out);
    }
  });
}

function strictProblems(o) {
  const file = resolveDts(path.join(modelsDir, 'x'), `./${o.apiVersion}/${o.kind}`);
  if (!file) return [];
  const out = [];
  unknownFields(o, file, id(o), out);
  return out.map((x) => `schema: ${x}`);
}

// ---- Invariants ----

function podSpecs(objects) {
  const out = [];
  for (const o of objects) {
    const spec = o.spec && o.spec.template && o.spec.template.spec;
    if (spec) out.push({ owner: o, spec });
    if (o.kind === 'Pod') out.push({ owner: o, spec: o.spec });
  }
  return out;
}

function allContainers(spec) {
  return [...(spec.initContainers || []), ...(spec.containers || [])];
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;

function imageProblem(image) {
  if (typeof image !== 'string' || image === '') return 'no image';
  if (DIGEST.test(image)) return null;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon < 0) return `image ${image} has neither a tag nor a digest`;
  const tag = image.slice(colon + 1);
  if (tag === 'latest' || tag === '') return `image ${image} is not pinned (tag "${tag}")`;
  return null;
}

function containerProblems(where, spec, c) {
  const p = [];
  const pod = spec.securityContext || {};
  const sc = c.securityContext || {};
  const nonRoot = sc.runAsNonRoot !== undefined ? sc.runAsNonRoot : pod.runAsNonRoot;
  if (nonRoot !== true) p.push(`${where}: runAsNonRoot is not true`);
  const uid = sc.runAsUser !== undefined ? sc.runAsUser : pod.runAsUser;
  if (uid === 0) p.push(`${where}: runAsUser is 0`);
  if (sc.allowPrivilegeEscalation !== false) p.push(`${where}: allowPrivilegeEscalation is not false`);
  if (sc.readOnlyRootFilesystem !== true) p.push(`${where}: readOnlyRootFilesystem is not true`);
  if (sc.privileged === true) p.push(`${where}: privileged`);
  const caps = sc.capabilities || {};
  if (!(caps.drop || []).includes('ALL')) p.push(`${where}: capabilities do not drop ALL`);
  if ((caps.add || []).length) p.push(`${where}: capabilities added: ${caps.add}`);
  const seccomp = sc.seccompProfile || pod.seccompProfile || {};
  if (seccomp.type !== 'RuntimeDefault') p.push(`${where}: seccompProfile is not RuntimeDefault`);
  const res = c.resources || {};
  for (const kind of ['limits', 'requests']) {
    for (const r of ['cpu', 'memory']) {
      if (!res[kind] || res[kind][r] === undefined) p.push(`${where}: no resources.${kind}.${r}`);
    }
  }
  const imageWhy = imageProblem(c.image);
  if (imageWhy) p.push(`${where}: ${imageWhy}`);
  if (c.imagePullPolicy === 'Always' && !DIGEST.test(c.image || '')) {
    // Not wrong, but a pinned tag with Always is a sign the tag is expected to move.
    p.push(`${where}: imagePullPolicy Always with a tag; pin a digest instead`);
  }
  for (const e of c.env || []) {
    if (/KEK|KEY|DSN|PASSWORD|TOKEN|SECRET/i.test(e.name) && e.value !== undefined &&
        !/ADDRESS$/.test(e.name)) {
      p.push(`${where}: env ${e.name} has a literal value; take it from a Secret`);
    }
  }
  return p;
}

// Secret material must never sit in a ConfigMap: private keys, KEK entries, passwords, DSNs.
const SECRET_PATTERNS = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'a PEM private key'],
  [/[A-Za-z0-9+/]{43}=/, 'a 32-byte base64 key (a KEK or fingerprint key)'],
  [/password/i, 'a password'],
  [/"d"\s*:\s*"/, 'a private JWK member "d"'],
  [/(^|\s)dsn\s*:\s*\S/m, 'a literal store DSN (use dsn_env)'],
  [/(host|dbname|user)=\S+/, 'a libpq connection string'],
];

function configMapProblems(o) {
  const p = [];
  for (const [key, value] of Object.entries({ ...(o.data || {}), ...(o.binaryData || {}) })) {
    for (const [re, what] of SECRET_PATTERNS) {
      if (re.test(String(value))) p.push(`${id(o)}: ${key} holds ${what}`);
    }
  }
  return p;
}

function volumeByName(spec, name) {
  return (spec.volumes || []).find((v) => v.name === name);
}

function mountFor(container, dir) {
  return (container.volumeMounts || []).find((m) => m.mountPath === dir);
}

function envSource(container, name) {
  return (container.env || []).find((e) => e.name === name);
}

// The sidecar pod: native sidecar, probes on the health port, socket in a memory emptyDir
// shared with the app, configuration from the ConfigMap, keys from Secrets.
function sidecarProblems(objects, configs) {
  const p = [];
  const pods = podSpecs(objects).filter(({ spec }) =>
    allContainers(spec).some((c) => c.name === SIDECAR && (c.args || []).some((a) => a.startsWith('--config='))));
  if (pods.length !== 1) return [`expected one workload running the ${SIDECAR} sidecar, found ${pods.length}`];
  const { owner, spec } = pods[0];
  const where = `${id(owner)}`;
  const sidecar = (spec.initContainers || []).find((c) => c.name === SIDECAR);
  if (!sidecar) return [`${where}: ${SIDECAR} is not an init container (native sidecar)`];
  if (sidecar.restartPolicy !== 'Always') p.push(`${where}: ${SIDECAR} restartPolicy is not Always`);
  const apps = spec.containers || [];
  if (apps.length === 0) p.push(`${where}: no app container`);

  // Its configuration file, from a mounted ConfigMap.
  const configArg = sidecar.args.find((a) => a.startsWith('--config=')).slice('--config='.length);
  const mount = (sidecar.volumeMounts || []).find((m) => configArg.startsWith(m.mountPath + '/'));
  const volume = mount && volumeByName(spec, mount.name);
  const cmName = volume && volume.configMap && volume.configMap.name;
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName);
  const fileKey = mount && configArg.slice(mount.mountPath.length + 1);
  if (!cm || !cm.data || cm.data[fileKey] === undefined) {
    p.push(`${where}: --config=${configArg} is not a key of a ConfigMap mounted there`);
    return p;
  }
  const config = YAML.parse(cm.data[fileKey]);
  configs.push(cm.data[fileKey]);
  const listen = config.listen || {};

  // Probes: gRPC on the port of listen.health_address.
  const healthPort = Number(String(listen.health_address || '').split(':').pop());
  if (!healthPort) p.push(`${where}: the sidecar configuration has no listen.health_address`);
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const pr = sidecar[probe];
    if (!pr || !pr.grpc) p.push(`${where}: ${SIDECAR} has no gRPC ${probe}`);
    else if (pr.grpc.port !== healthPort) {
      p.push(`${where}: ${SIDECAR} ${probe} port ${pr.grpc.port} is not the health port ${healthPort}`);
    }
  }

  // The socket: in a memory emptyDir that the app mounts too.
  const socketDir = path.posix.dirname(listen.unix_socket || '/');
  const socketMount = mountFor(sidecar, socketDir);
  if (!listen.unix_socket || !socketMount) {
    p.push(`${where}: the socket directory ${socketDir} is not a volume of ${SIDECAR}`);
  } else {
    const v = volumeByName(spec, socketMount.name) || {};
    if (!v.emptyDir || v.emptyDir.medium !== 'Memory') {
      p.push(`${where}: socket volume ${socketMount.name} is not an emptyDir with medium Memory`);
    }
    for (const app of apps) {
      if (!(app.volumeMounts || []).some((m) => m.name === socketMount.name)) {
        p.push(`${where}: container ${app.name} does not mount the socket volume`);
      }
    }
  }

  // Keys and DSN from Secrets, never literal.
  const store = config.store || {};
  const fromSecret = [
    ['store.kek.env', store.kek && store.kek.env],
    ['redaction.fingerprint_key_env', config.redaction && config.redaction.fingerprint_key_env],
    ['store.postgres.dsn_env', store.postgres && store.postgres.dsn_env],
  ];
  for (const [field, envName] of fromSecret) {
    if (!envName) continue;
    const e = envSource(sidecar, envName);
    if (!e || !e.valueFrom || !e.valueFrom.secretKeyRef) {
      p.push(`${where}: ${field} names ${envName}, which is not set from a Secret`);
    }
  }
  if (store.kek && store.kek.file) p.push(`${where}: store.kek.file: use store.kek.env (see docs/deploy.md)`);
  if (store.postgres && store.postgres.dsn) p.push(`${where}: store.postgres.dsn: use dsn_env`);
  const auth = config.auth || {};
  if (auth.jwks_file) {
    const jwksMount = (sidecar.volumeMounts || []).find((m) => auth.jwks_file.startsWith(m.mountPath + '/'));
    const v = jwksMount && volumeByName(spec, jwksMount.name);
    if (!v || !v.secret) p.push(`${where}: auth.jwks_file is not in a mounted Secret`);
    if (jwksMount && jwksMount.subPath) p.push(`${where}: the JWKS mount uses subPath, which never updates`);
  }

  // A NetworkPolicy and a PodDisruptionBudget select the pod.
  const labels = (owner.spec.template.metadata || {}).labels || {};
  const selects = (sel) => sel && (sel.matchLabels || sel.matchExpressions) &&
    Object.entries(sel.matchLabels || {}).every(([k, v]) => labels[k] === v) &&
    (sel.matchExpressions || []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key]));
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && selects(o.spec.podSelector));
  if (!policies.some((o) => (o.spec.policyTypes || []).includes('Ingress') &&
      (o.spec.policyTypes || []).includes('Egress'))) {
    p.push(`${where}: no NetworkPolicy with Ingress and Egress selects the pod`);
  }
  if (!objects.some((o) => o.kind === 'PodDisruptionBudget' && selects(o.spec.selector))) {
    p.push(`${where}: no PodDisruptionBudget selects the pod`);
  }
  return p.concat(storeProblems(objects, owner, spec, sidecar, config));
}

function storeProblems(objects, owner, spec, sidecar, config) {
  const p = [];
  const where = id(owner);
  const store = config.store || {};
  if (store.sqlite) {
    if (owner.spec.replicas !== 1) p.push(`${where}: the embedded store needs replicas 1`);
    if (!owner.spec.strategy || owner.spec.strategy.type !== 'Recreate') {
      p.push(`${where}: the embedded store needs strategy Recreate`);
    }
    const dir = path.posix.dirname(store.sqlite.path || '/');
    const m = mountFor(sidecar, dir);
    const v = m && volumeByName(spec, m.name);
    const claim = v && v.persistentVolumeClaim && v.persistentVolumeClaim.claimName;
    if (!claim || !objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === claim)) {
      p.push(`${where}: store.sqlite.path ${store.sqlite.path} is not on a PersistentVolumeClaim of the overlay`);
    }
  } else if (store.postgres) {
    if (!(owner.spec.replicas >= 2)) p.push(`${where}: the shared store is for several replicas`);
    const jobs = objects.filter((o) => o.kind === 'Job');
    const migrate = jobs.find((j) => j.spec.template.spec.containers.some((c) =>
      [...(c.command || []), ...(c.args || [])].join(' ').match(/secretctl.* migrate( |$)/)));
    if (!migrate) p.push('no Job runs secretctl migrate');
    else {
      const c = migrate.spec.template.spec.containers[0];
      for (const name of [store.postgres.dsn_env, store.kek && store.kek.env]) {
        const e = envSource(c, name);
        if (name && (!e || !e.valueFrom || !e.valueFrom.secretKeyRef)) {
          p.push(`${id(migrate)}: ${name} is not set from a Secret`);
        }
      }
      const image = (s) => s.replace(/[:@].*$/, '');
      if (image(c.image) !== image(sidecar.image)) p.push(`${id(migrate)}: not the sidecar's image`);
    }
  } else if (store.upstream) {
    // The tiered layout: TLS material from a mounted Secret, invalidation by the change stream.
    for (const field of ['ca_file', 'cert_file', 'key_file']) {
      const file = store.upstream[field];
      const m = file && (sidecar.volumeMounts || []).find((x) => file.startsWith(x.mountPath + '/'));
      const v = m && volumeByName(spec, m.name);
      if (!v || !v.secret) p.push(`${where}: store.upstream.${field} is not in a mounted Secret`);
    }
    if (store.upstream.change_stream !== true) {
      p.push(`${where}: store.upstream.change_stream is not true (the cache would go stale for a TTL)`);
    }
    if (envSource(sidecar, 'SECRET_RESOLVER_KEK')) p.push(`${where}: a sidecar of the tier holds the KEK`);
  } else {
    p.push(`${where}: the sidecar configuration has no store`);
  }
  return p;
}

// The central tier of overlays/tiered (a Deployment whose container is CENTRAL): several
// replicas, mTLS that requires client certificates, the change stream for listed clients only,
// keys and DSN from Secrets, and a Service, a PodDisruptionBudget and a NetworkPolicy that lets
// only the workload pods reach the TLS port. No problems when there is no central tier.
const CENTRAL = 'secret-resolver-central';

function centralProblems(objects, configs) {
  const found = podSpecs(objects).filter(({ spec }) => (spec.containers || []).some((c) => c.name === CENTRAL));
  if (found.length === 0) return [];
  if (found.length > 1) return [`expected one ${CENTRAL} workload, found ${found.length}`];
  const p = [];
  const { owner, spec } = found[0];
  const where = id(owner);
  const c = spec.containers.find((x) => x.name === CENTRAL);
  if (!(owner.spec.replicas >= 2)) p.push(`${where}: the central tier needs replicas >= 2`);
  const configArg = ((c.args || []).find((a) => a.startsWith('--config=')) || '').slice('--config='.length);
  const mount = (c.volumeMounts || []).find((m) => configArg.startsWith(m.mountPath + '/'));
  const volume = mount && volumeByName(spec, mount.name);
  const cm = volume && volume.configMap &&
    objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap.name);
  const fileKey = mount && configArg.slice(mount.mountPath.length + 1);
  if (!cm || !cm.data || cm.data[fileKey] === undefined) {
    return p.concat([`${where}: --config=${configArg} is not a key of a ConfigMap mounted there`]);
  }
  configs.push(cm.data[fileKey]);
  const config = YAML.parse(cm.data[fileKey]);
  const listen = config.listen || {};
  const tls = listen.tls || {};
  if (!listen.tcp_address || tls.require_client_cert !== true || !tls.client_ca_file) {
    p.push(`${where}: the central tier must listen with TLS and require_client_cert: true`);
  }
  for (const field of ['cert_file', 'key_file', 'client_ca_file']) {
    const m = tls[field] && (c.volumeMounts || []).find((x) => tls[field].startsWith(x.mountPath + '/'));
    const v = m && volumeByName(spec, m.name);
    if (!v || !v.secret) p.push(`${where}: listen.tls.${field} is not in a mounted Secret`);
  }
  if (!((config.change_stream || {}).allowed_clients || []).length) {
    p.push(`${where}: change_stream.allowed_clients is empty: the sidecars get no change stream`);
  }
  const store = config.store || {};
  if (!store.postgres) p.push(`${where}: the central tier is not on the shared postgres store`);
  for (const name of [store.postgres && store.postgres.dsn_env, store.kek && store.kek.env,
    config.redaction && config.redaction.fingerprint_key_env]) {
    const e = name && envSource(c, name);
    if (name && (!e || !e.valueFrom || !e.valueFrom.secretKeyRef)) p.push(`${where}: ${name} is not set from a Secret`);
  }
  const labels = (owner.spec.template.metadata || {}).labels || {};
  const selects = (sel) => sel && Object.keys(sel).length > 0 &&
    Object.entries(sel.matchLabels || sel).every(([k, v]) => labels[k] === v);
  const services = objects.filter((o) => o.kind === 'Service' && selects(o.spec.selector));
  if (services.length === 0) {
    p.push(`${where}: no Service selects the central tier`);
  }
  // A sidecar's change stream and fetches must reach one replica (see the overlay's Service).
  for (const s of services) {
    if (s.spec.sessionAffinity !== 'ClientIP') {
      p.push(`${where}: Service ${s.metadata.name} has no sessionAffinity: ClientIP, so a sidecar's fetches may reach another replica than its change stream`);
    }
  }
  if (!objects.some((o) => o.kind === 'PodDisruptionBudget' && selects(o.spec.selector))) {
    p.push(`${where}: no PodDisruptionBudget selects the central tier`);
  }
  const tlsPort = Number(String(listen.tcp_address || '').split(':').pop());
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && selects(o.spec.podSelector) &&
    (o.spec.policyTypes || []).includes('Ingress') && (o.spec.policyTypes || []).includes('Egress'));
  if (policies.length === 0) p.push(`${where}: no NetworkPolicy with Ingress and Egress selects the central tier`);
  for (const pol of policies) {
    for (const rule of pol.spec.ingress || []) {
      const onTls = !rule.ports || rule.ports.some((x) => x.port === tlsPort);
      const open = !rule.from || rule.from.some((f) => !f.podSelector || !f.podSelector.matchLabels);
      if (onTls && open) p.push(`${id(pol)}: the central tier's port ${tlsPort} is open to more than the sidecar pods (only from a podSelector with labels)`);
    }
  }
  return p;
}

function overlayProblems(objects, configs, centralConfigs = []) {
  let p = [];
  for (const o of objects) p = p.concat(schemaProblems(o), strictProblems(o));
  for (const o of objects) {
    if (o.kind === 'Secret') p.push(`${id(o)}: a Secret in the manifests (secret material is created out of band)`);
    if (o.kind === 'ConfigMap') p = p.concat(configMapProblems(o));
  }
  for (const { owner, spec } of podSpecs(objects)) {
    if (spec.hostNetwork || spec.hostPID || spec.hostIPC) p.push(`${id(owner)}: uses a host namespace`);
    for (const c of allContainers(spec)) p = p.concat(containerProblems(`${id(owner)} ${c.name}`, spec, c));
  }
  return p.concat(sidecarProblems(objects, configs), centralProblems(objects, centralConfigs));
}

// ---- Alerts ----

function alertProblems(file, metricsSource) {
  const p = [];
  const rules = YAML.parse(fs.readFileSync(file, 'utf8'));
  const source = fs.readFileSync(metricsSource, 'utf8');
  let count = 0;
  for (const group of rules.groups || []) {
    for (const rule of group.rules || []) {
      count++;
      if (!rule.alert || !rule.expr) p.push(`${file}: a rule without alert or expr`);
      if (!rule.labels || !rule.labels.severity) p.push(`${file}: ${rule.alert}: no severity label`);
      for (const m of String(rule.expr).match(/secret_resolver_[a-z_]+/g) || []) {
        const base = m.replace(/_(bucket|sum|count)$/, '');
        if (!source.includes(`"${base}"`)) p.push(`${file}: ${rule.alert}: ${m} is not a metric the sidecar exports`);
      }
    }
  }
  if (count === 0) p.push(`${file}: no rules`);
  return p;
}

// ---- Self-check: each invariant, broken on purpose, must be reported ----

function findSidecar(objects) {
  for (const { spec } of podSpecs(objects)) {
    const s = (spec.initContainers || []).find((c) => c.name === SIDECAR);
    if (s) return { spec, sidecar: s };
  }
  throw new Error('no sidecar');
}

const MUTATIONS = [
  ['sidecar without limits', (o) => { delete findSidecar(o).sidecar.resources.limits; }, /resources\.limits/],
  ['sidecar image :latest', (o) => { const s = findSidecar(o).sidecar; s.image = s.image.replace(/[:@].*$/, ':latest'); }, /not pinned/],
  ['sidecar image untagged', (o) => { const s = findSidecar(o).sidecar; s.image = s.image.replace(/[:@].*$/, ''); }, /neither a tag/],
  ['no restartPolicy Always', (o) => { delete findSidecar(o).sidecar.restartPolicy; }, /restartPolicy/],
  ['no readiness probe', (o) => { delete findSidecar(o).sidecar.readinessProbe; }, /readinessProbe/],
  ['no liveness probe', (o) => { delete findSidecar(o).sidecar.livenessProbe; }, /livenessProbe/],
  ['socket on disk', (o) => { const { spec } = findSidecar(o); spec.volumes.find((v) => v.name === 'secret-resolver-socket').emptyDir = {}; }, /medium Memory/],
  ['writable root', (o) => { findSidecar(o).sidecar.securityContext.readOnlyRootFilesystem = false; }, /readOnlyRootFilesystem/],
  ['privilege escalation', (o) => { delete o.find((x) => x.kind === 'Deployment').spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation; }, /allowPrivilegeEscalation/],
  ['capabilities kept', (o) => { findSidecar(o).sidecar.securityContext.capabilities.drop = ['NET_RAW']; }, /drop ALL/],
  ['no seccomp', (o) => { const { spec, sidecar } = findSidecar(o); delete sidecar.securityContext.seccompProfile; delete spec.securityContext.seccompProfile; }, /seccompProfile/],
  ['may run as root', (o) => { const { spec, sidecar } = findSidecar(o); delete sidecar.securityContext.runAsNonRoot; delete spec.securityContext.runAsNonRoot; }, /runAsNonRoot/],
  ['password in ConfigMap', (o) => { const cm = o.find((x) => x.kind === 'ConfigMap'); const k = Object.keys(cm.data)[0]; cm.data[k] += '\n# password: hunter2\n'; }, /password/],
  ['KEK in ConfigMap', (o) => { const cm = o.find((x) => x.kind === 'ConfigMap'); cm.data.kek = 'kek-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='; }, /base64 key/],
  ['PEM key in ConfigMap', (o) => { const cm = o.find((x) => x.kind === 'ConfigMap'); cm.data['k.pem'] = '-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n'; }, /PEM private key/],
  // The KEK where the sidecar holds one (the tier's sidecars do not), else the fingerprint key.
  ['KEK as literal env', (o) => { const env = findSidecar(o).sidecar.env; const e = env.find((x) => x.name === 'SECRET_RESOLVER_KEK') || env.find((x) => x.name === 'SECRET_RESOLVER_FINGERPRINT_KEY'); delete e.valueFrom; e.value = 'x'; }, /literal value|not set from a Secret/],
  ['schema: misspelt field', (o) => { const s = findSidecar(o).sidecar; s.readinessprobe = s.readinessProbe; }, /unknown field "readinessprobe"/],
  ['schema: misspelt nested field', (o) => { findSidecar(o).sidecar.securityContext.readOnlyRootFileSystem = true; }, /unknown field "readOnlyRootFileSystem"/],
  ['schema: bad quantity', (o) => { findSidecar(o).sidecar.resources.requests.memory = '128 megabytes'; }, /schema/],
  ['no NetworkPolicy', (o) => { for (let i = o.length - 1; i >= 0; i--) if (o[i].kind === 'NetworkPolicy') o.splice(i, 1); }, /NetworkPolicy/],
  ['policy without Egress', (o) => { for (const x of o) if (x.kind === 'NetworkPolicy') x.spec.policyTypes = ['Ingress']; }, /NetworkPolicy/],
  ['no PodDisruptionBudget', (o) => { o.splice(o.findIndex((x) => x.kind === 'PodDisruptionBudget'), 1); }, /PodDisruptionBudget/],
];

// Only for overlays with a central tier.
function centralDeployment(o) {
  return o.find((x) => x.kind === 'Deployment' && x.spec.template.spec.containers.some((c) => c.name === CENTRAL));
}
function centralConfigMap(o) {
  const name = centralDeployment(o).spec.template.spec.volumes.find((v) => v.configMap).configMap.name;
  return o.find((x) => x.kind === 'ConfigMap' && x.metadata.name === name);
}
const CENTRAL_MUTATIONS = [
  ['central tier with one replica', (o) => { centralDeployment(o).spec.replicas = 1; }, /replicas >= 2/],
  ['client certificates optional', (o) => { const cm = centralConfigMap(o); const k = Object.keys(cm.data)[0]; cm.data[k] = cm.data[k].replace('require_client_cert: true', 'require_client_cert: false'); }, /require_client_cert/],
  ['no allowed change stream clients', (o) => { const cm = centralConfigMap(o); const k = Object.keys(cm.data)[0]; cm.data[k] = cm.data[k].replace(/allowed_clients: \[.*\]/, 'allowed_clients: []'); }, /allowed_clients/],
  ['central port open to every pod', (o) => { for (const x of o) if (x.kind === 'NetworkPolicy' && x.metadata.name === CENTRAL) x.spec.ingress[0].from = [{ namespaceSelector: {} }]; }, /open to more than the sidecar pods/],
  ['no central Service', (o) => { o.splice(o.findIndex((x) => x.kind === 'Service'), 1); }, /no Service/],
  ['central Service without client affinity', (o) => { delete o.find((x) => x.kind === 'Service').spec.sessionAffinity; }, /sessionAffinity: ClientIP/],
  ['sidecar holds the KEK', (o) => { findSidecar(o).sidecar.env.push({ name: 'SECRET_RESOLVER_KEK', valueFrom: { secretKeyRef: { name: 'secret-resolver-keys', key: 'kek' } } }); }, /holds the KEK/],
  ['sidecar without the change stream', (o) => { const cm = o.find((x) => x.kind === 'ConfigMap' && x.metadata.name.startsWith('secret-resolver-config')); const k = Object.keys(cm.data)[0]; cm.data[k] = cm.data[k].replace('change_stream: true', 'change_stream: false'); }, /change_stream is not true/],
];

function main() {
  const args = parseArgs(process.argv.slice(2));
  let failures = 0;
  let passes = 0;
  const report = (name, problems) => {
    if (problems.length === 0) {
      passes++;
      console.log(`ok: ${name}`);
    } else {
      failures++;
      console.log(`FAIL: ${name}`);
      for (const x of problems) console.log(`  - ${x}`);
    }
  };
  const rendered = {};
  for (const { name, file } of args.overlays) {
    const objects = loadObjects(file);
    rendered[name] = objects;
    const configs = [];
    const centralConfigs = [];
    report(`overlay ${name} (${objects.length} objects): schema and invariants`,
      overlayProblems(objects, configs, centralConfigs));
    if (args.configOut && configs.length) {
      fs.writeFileSync(path.join(args.configOut, `${name}.yaml`), configs[0]);
    }
    if (args.configOut && centralConfigs.length) {
      fs.writeFileSync(path.join(args.configOut, `${name}-central.yaml`), centralConfigs[0]);
    }
  }
  if (args.alerts) report(`alert rules ${path.basename(args.alerts)}`, alertProblems(args.alerts, args.metricsSource));

  // Each mutation must be caught, in every overlay.
  for (const [name, objects] of Object.entries(rendered)) {
    const mutations = centralDeployment(objects) ? MUTATIONS.concat(CENTRAL_MUTATIONS) : MUTATIONS;
    for (const [what, mutate, expect] of mutations) {
      const copy = JSON.parse(JSON.stringify(objects));
      mutate(copy);
      const problems = overlayProblems(copy, []);
      const caught = problems.some((x) => expect.test(x));
      report(`overlay ${name}, broken on purpose (${what}): reported`,
        caught ? [] : [`not reported; problems were: ${problems.join('; ') || 'none'}`]);
    }
  }
  console.log(`validate_manifests: ${passes} checks hold, ${failures} fail`);
  process.exit(failures === 0 ? 0 : 1);
}

main();
