#!/usr/bin/env node
/** The `skiff` command: dispatches to one module per subcommand. */
import { readFileSync } from 'node:fs';
import { SkiffError } from '../core/errors.js';

const USAGE = `skiff — a TypeScript sidecar proxy for Istio-style meshes

Usage:
  skiff run -c <file|dir> [flags]     run the proxy with Istio YAML config
  skiff run --xds <host:port> [flags] run the proxy with config from an xDS server (istiod)
  skiff proxy sidecar [pilot-agent flags]
                                      as istio-proxy's pilot-agent: sidecar mode, config from istiod
  skiff validate -c <file|dir>        check config; one line per problem, exit 1 on errors
  skiff demo                          start sample services and the proxy with an example mesh
  skiff iptables [flags]              install Istio's traffic-capture rules (the istio-init step)
  skiff inject -f <file|-> [flags]    add the skiff sidecar to Kubernetes manifests (istioctl kube-inject)
  skiff wait [flags]                  wait until the proxy is ready (pilot-agent wait); exit 1 on timeout
  skiff route-check -c <routes> -t <tests> [--details]
                                      check routing against expectations (Envoy's router_check_tool);
                                      routes: an Envoy RouteConfiguration or Istio YAML; exit 1 on a failure
  skiff ca init|issue [flags]         a small CA: create a root; issue a workload cert in Istio's file layout
  skiff --version | --help

Run flags:
  -c, --config <file|dir>   Istio YAML (VirtualService, DestinationRule, ServiceEntry, Gateway,
                            security policies) and skiff's MeshConfig
  --mode <mode>             standalone (default): an HTTP proxy on 127.0.0.1 for clients that
                            address it; sidecar: the capture listeners iptables redirects to;
                            gateway: the ports of the Gateways that select this proxy's labels
  --outbound-port <n>       outbound listener (default 15001; 127.0.0.1 standalone, 0.0.0.0 sidecar)
  --admin-port <n>          admin server (default 15000, on 127.0.0.1)
  --readiness-port <n>      readiness server, GET /healthz/ready (default 15021)
  --inbound-port <n>        sidecar inbound listener (default 15006, on 0.0.0.0)
  --status-port <n>         sidecar and gateway status server: /healthz/ready, POST /quitquitquit (default 15020)
  --stats-port <n>          Envoy's Prometheus port, /stats/prometheus (default 15090; sidecar and gateway)
  --certs <dir>             workload cert-chain.pem, key.pem, root-cert.pem (default: Istio's
                            ./var/run/secrets/workload-spiffe-credentials or /etc/certs)
  --log-level <level>       debug | info | warn | error | off (default info)
  --concurrency <n>         worker processes (default 1; 0: one per core)
  --log-as-json             one JSON object per log line
  --drain-time-s <n>        on SIGTERM/SIGINT, keep serving outbound this long, then close
                            (Istio's terminationDrainDuration; default 5, or MeshConfig's)
  --xds <address>           take listeners, routes, clusters and endpoints from an ADS server:
                            host:port or a unix socket path (--config then gives MeshConfig only)
  --xds-auth NONE|MUTUAL_TLS  plaintext (istiod's 15010) or TLS (default on 15012): mTLS with the
                            certificate files, else the service-account token as a bearer credential
  --xds-token <file>        the token (default /var/run/secrets/tokens/istio-token); with it and no
                            certificate files, the workload certificate comes from Istio's CA
  --xds-root-cert <file>    the mesh root istiod's certificate is checked with
                            (default /var/run/secrets/istio/root-cert.pem)
  --xds-server-name <name>  istiod's TLS name when the address does not carry it
  --xds-service-cluster <s>, --xds-domain <d>   the node's cluster and id domain

Proxy sidecar flags (pilot-agent's; others are accepted and logged):
  --discoveryAddress, --controlPlaneAuthPolicy, --serviceCluster, --domain, --proxyAdminPort,
  --statusPort, --concurrency, --drainDuration, --parentShutdownDuration, --zipkinAddress,
  --dnsRefreshRate, --connectTimeout, --proxyLogLevel; PROXY_CONFIG (JSON) is read as well

Iptables flags (as istio-iptables; lists are comma-separated):
  -p <port>            outbound capture port (15001)
  -z <port>            inbound capture port (15006)
  -e <port>            inbound tunnel port, never captured (15008)
  -u <uids>, -g <gids> the proxy's uid/gid, never captured (1337; -g defaults to -u)
  -m REDIRECT|TPROXY   inbound capture mode (REDIRECT)
  -b <ports>|*         inbound ports to capture ("" = none); -d <ports> excluded when -b is *
  -i <cidrs>|*         outbound CIDRs to capture ("" = none); -x <cidrs> excluded
  -q <ports>           outbound ports always captured; -o <ports> never captured
  -c <nics>            interfaces never captured; -k <nics> inbound treated as outbound
  -t <mark>, -r <n>    TPROXY mark (1337) and routing table (133)
  --dual-stack         IPv6 rules whenever the pod has an IPv6 address
  -n, --dry-run        print the iptables-restore input and change nothing
  --clean              remove the ISTIO_* chains and the jumps to them (safe to repeat)

Inject flags:
  -f, --filename <file|->   manifests to inject; - reads stdin
  -o, --output <file>       write here instead of stdout
  --image <image>           skiff image for istio-init and istio-proxy (default localhost/skiff:latest)
  --config-map <name>       ConfigMap mounted at /etc/skiff/config (default skiff-mesh)

Wait flags (Istio's spellings; kebab-case also accepted):
  --timeoutSeconds <n>         give up after n seconds (default 60)
  --periodMillis <n>           between checks (default 500)
  --requestTimeoutMillis <n>   per check, 0 for none (default 500)
  --url <url>                  readiness URL (default http://localhost:15021/healthz/ready)

CA flags:
  ca init  [--dir <dir>] [--force]     write <dir>/root-cert.pem and root-key.pem (default ./ca); --force overwrites
  ca issue --ns <ns> --sa <sa>         write cert-chain.pem, key.pem, root-cert.pem for spiffe://<td>/ns/<ns>/sa/<sa>
    --ca-dir <dir>          the root from "ca init" (default ./ca)
    --out <dir>             default ./var/run/secrets/workload-spiffe-credentials
    --trust-domain <td>     default cluster.local
    --ttl <duration>        certificate lifetime, e.g. 24h (default), 90m; at most 2160h

Demo flags:
  --outbound-port, --admin-port, --readiness-port <n>   as for run (the sample services use 19080-19085)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case '-v':
    case '--version':
    case 'version':
      process.stdout.write(`skiff ${version()}\n`);
      return 0;
    // Each command's module loads only when it runs (a proxy's start does not pay for the CA's
    // certificate library, say).
    case 'run':
      return (await import('./run.js')).runCommand(rest);
    case 'validate':
      return (await import('./validate.js')).validateCommand(rest);
    case 'demo':
      return (await import('./demo.js')).demoCommand(rest);
    case 'iptables':
      return (await import('./iptables.js')).runIptablesCommand(rest);
    case 'inject':
      return (await import('./inject.js')).injectCommand(rest);
    case 'wait':
      return (await import('./wait.js')).waitCommand(rest);
    case 'ca':
      return (await import('./ca.js')).caCommand(rest);
    case 'route-check':
      return (await import('./route-check.js')).routeCheckCommand(rest);
    case 'proxy':
      return (await import('./proxy-sidecar.js')).proxyCommand(rest);
    default:
      throw new SkiffError('USAGE', `unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof SkiffError) {
      process.stderr.write(`skiff: ${err.message}\n`);
      if (err.code === 'USAGE') process.stderr.write('run "skiff --help" for usage\n');
    } else {
      process.stderr.write(`skiff: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
