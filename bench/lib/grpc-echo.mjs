#!/usr/bin/env node
/**
 * The P9 upstream: a @grpc/grpc-js server on 127.0.0.1:PORT (h2c) with one unary method,
 * /bench.Echo/Echo, that answers with the request's bytes.
 *
 *   node grpc-echo.mjs PORT
 */
import grpc from '@grpc/grpc-js';
import { ECHO_SERVICE } from './grpc.mjs';

const port = Number(process.argv[2]);
const server = new grpc.Server();
server.addService(ECHO_SERVICE, { Echo: (call, callback) => callback(null, call.request) });
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`grpc-echo: ${err.message}\n`);
    process.exit(1);
  }
});
