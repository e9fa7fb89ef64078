/** LOG_LEVEL, the same field in every app (a module of its own: sni-proxy's bundle takes nothing else of common.ts). */
import { t } from '../schema.js';

/** The apps' log levels (pino's), most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const logLevelField = t.enumOf(LOG_LEVELS, { env: 'LOG_LEVEL', default: 'info', doc: 'Level of the structured JSON logs.' });
