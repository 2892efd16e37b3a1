/**
 * An experiment, never a published figure: `npm run bench -- --bare-handlers` (and
 * `bench:profile -- --bare-handlers`) preload this file into the library's children, so that
 * each `@Consume` method is called directly, with the payload, instead of through Nest's RPC
 * pipeline (its pipes, guards, interceptors, exception filters and RPC proxy: `RpcContextCreator`)
 * and its processing hooks (`Server.runWithProcessingHooks`). What the run gains is what that
 * pipeline costs per message, end to end, with its share of the garbage collector: the part of
 * the gap to the raw client that the library cannot remove while `@Consume` is a Nest handler
 * (SPEC §2). It only fits the bench's own handlers, which take `@Payload()` alone.
 */
import 'reflect-metadata';
// Nest's own module files (ES modules, loaded through require(esm)): the classes Nest uses.
import { RpcContextCreator } from '@nestjs/microservices/context/rpc-context-creator.js';
import { Server } from '@nestjs/microservices/server/server.js';

type Handler = (data: unknown, ctx: unknown) => unknown;

(RpcContextCreator.prototype as { create: unknown }).create = function bare(
  instance: object,
  callback: Handler,
): Handler {
  return (data, ctx) => callback.call(instance, data, ctx);
};
(Server.prototype as unknown as { runWithProcessingHooks: unknown }).runWithProcessingHooks =
  function bare(_ctx: unknown, fn: (runEndHook: () => void) => unknown): unknown {
    return fn(() => undefined);
  };
process.stderr.write("EXPERIMENT: @Consume handlers called without Nest's RPC pipeline\n");
