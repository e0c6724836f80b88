/** Schema pieces shared by the Istio kinds (istio/api networking/v1alpha3 messages). */
import { parseHeaderFormat } from '../../core/header-format.js';
import {
  array,
  boolean,
  integer,
  number,
  object,
  re2,
  record,
  refine,
  string,
  type Infer,
} from '../schema.js';

/** Kubernetes object metadata. Fields skiff does not read are accepted and ignored. */
export const metadataSchema = object(
  {
    name: string({
      nonEmpty: true,
      pattern: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
      patternHint: 'must be a lowercase DNS-1123 name',
    }),
    namespace: string({
      nonEmpty: true,
      pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
      patternHint: 'must be a lowercase DNS-1123 label',
    }),
    labels: record(string()),
    annotations: record(string()),
    creationTimestamp: string(),
  },
  {
    required: ['name'],
    ignored: [
      'generation', 'resourceVersion', 'uid', 'managedFields', 'ownerReferences', 'finalizers',
      'generateName', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds',
    ],
  },
);

/** Istio's validateStringMatchRegexp: regexes longer than this are refused. */
const MAX_REGEX_LENGTH = 1024;

/**
 * istio StringMatch: exactly one of exact, prefix, regex; `{}` is a presence match where allowed.
 * A regex must be non-empty, at most 1024 characters and valid RE2 (Istio's validation).
 */
export const stringMatchSchema = object(
  {
    exact: string(),
    prefix: string(),
    regex: refine(re2(), (v, path, issues) => {
      if (v === '') issues.error(path, 'regex string match must not be empty');
      else if (v.length > MAX_REGEX_LENGTH) issues.error(path, `regex is too large: ${v.length} characters, at most ${MAX_REGEX_LENGTH} allowed`);
      else return v;
      return undefined;
    }),
  },
  { oneOf: [['exact', 'prefix', 'regex']] },
);
export type IstioStringMatch = Infer<typeof stringMatchSchema>;

export const percentSchema = object({ value: number({ min: 0, max: 100 }) });

export const portSelectorSchema = object({ number: integer({ min: 1, max: 65535 }) });

export const destinationSchema = object(
  {
    host: string({ nonEmpty: true }),
    subset: string(),
    port: portSelectorSchema,
  },
  { required: ['host'] },
);
export type IstioDestination = Infer<typeof destinationSchema>;

const HEADER_NAME = { pattern: /^[!#$%&'*+\-.^_`|~0-9A-Za-z:]+$/, hint: 'not a valid HTTP header name' };

/** A header value: Envoy's %COMMAND%s are expanded per request, and a stray `%` is refused as Envoy does. */
const headerValueSchema = refine(string(), (v, path, issues) => {
  const parsed = parseHeaderFormat(v);
  if ('error' in parsed) {
    issues.error(path, `invalid header value ${JSON.stringify(v)}: ${parsed.error}`);
    return undefined;
  }
  return v;
});

const headerOperationsSchema = object({
  set: record(headerValueSchema, { key: HEADER_NAME }),
  add: record(headerValueSchema, { key: HEADER_NAME }),
  remove: array(string({ nonEmpty: true })),
});

export const headersSchema = object({ request: headerOperationsSchema, response: headerOperationsSchema });
export type IstioHeaders = Infer<typeof headersSchema>;

export const workloadSelectorSchema = object({ matchLabels: record(string()) });

export const labelsSchema = record(string());

export const booleanSchema = boolean();
