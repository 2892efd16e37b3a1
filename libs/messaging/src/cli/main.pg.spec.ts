import {
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../testing/postgres.fixture';
import { main } from './main';

describe('nest-messaging migrate', () => {
  const schema = uniqueSchema('nm_cli');
  afterAll(() => dropSchema(schema));

  it('prints the SQL, creates the tables, and can run again', async () => {
    const lines: string[] = [];
    expect(await main(['migrate', '--print', '--schema', schema], (l) => lines.push(l))).toBe(0);
    expect(lines.join('\n')).toContain(`CREATE TABLE IF NOT EXISTS "${schema}".messaging_outbox`);
    for (let run = 0; run < 2; run++) {
      expect(
        await main(
          ['migrate', '--database-url', TEST_DATABASE_URL, '--schema', schema],
          () => undefined,
        ),
      ).toBe(0);
    }
    const tables = await sqlOnTestDatabase(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [schema],
    );
    expect(tables.map((t) => t.table_name)).toEqual(['messaging_inbox', 'messaging_outbox']);
  });

  it('says how to fix a bad call', async () => {
    const lines: string[] = [];
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      expect(await main(['migrate'], (l) => lines.push(l))).toBe(2);
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
    expect(lines[0]).toMatch(/--database-url/);
    expect(await main(['migrat'], (l) => lines.push(l))).toBe(2);
    await expect(
      main(['migrate', '--schema', 'bad name', '--print'], () => undefined),
    ).rejects.toThrow(/plain identifier/);
  });
});
