import { Redis } from 'ioredis';
import { databaseOf } from './redis-connection';

describe('databaseOf', () => {
  it.each([
    'redis://127.0.0.1:6379',
    'redis://127.0.0.1:6379/',
    'redis://127.0.0.1:6379/13',
    'redis://user:secret@127.0.0.1:6379/2',
    'rediss://127.0.0.1:6380/7',
    'redis://127.0.0.1:6379?db=4',
    'redis://127.0.0.1:6379/?db=5',
    'redis://127.0.0.1:6379/3?db=5',
  ])('reads the database of %s as ioredis selects it', (url) => {
    const client = new Redis(url, { lazyConnect: true });
    expect(databaseOf(url)).toBe(Number(client.options.db ?? 0));
  });
});
