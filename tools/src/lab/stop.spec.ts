import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { onStopRequest } from './stop.js';

function fakeProcess() {
  const proc = new EventEmitter() as EventEmitter & { stdout: EventEmitter; stderr: EventEmitter };
  proc.stdout = new EventEmitter();
  proc.stderr = new EventEmitter();
  return proc;
}

describe('onStopRequest', () => {
  it('a signal asks for the stop once; later signals and output errors are ignored', () => {
    const proc = fakeProcess();
    const why: string[] = [];
    onStopRequest((w) => why.push(w), proc as never);
    proc.emit('SIGTERM');
    proc.emit('SIGINT');
    proc.stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    expect(why).toEqual(['SIGTERM']);
  });
  it('a closed stdout (EPIPE) or stderr (EIO) is a stop request, not an uncaught error', () => {
    const a = fakeProcess();
    const whyA: string[] = [];
    onStopRequest((w) => whyA.push(w), a as never);
    // without a listener, emitting 'error' would throw here
    expect(() => a.stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).not.toThrow();
    expect(() => a.stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).not.toThrow();
    expect(whyA).toEqual(['stdout closed (EPIPE)']);
    const b = fakeProcess();
    const whyB: string[] = [];
    onStopRequest((w) => whyB.push(w), b as never);
    b.stderr.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' }));
    b.emit('SIGHUP');
    expect(whyB).toEqual(['stderr closed (EIO)']);
  });
});
