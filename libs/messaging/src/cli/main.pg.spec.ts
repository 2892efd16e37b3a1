import {
  dropSchema,
  sqlOnTestDatabase,
  TEST_DATABASE_URL,
  uniqueSchema,
} from '../testing/postgres.fixture';
import { captureIo } from './cli.fixture';
import { main } from './main';

describe('nest-messaging migrate', () => {
  const schema = uniqueSchema('nm_cli');
  afterAll(() => dropSchema(schema));

  it('prints the SQL, creates the tables, and can run again', async () => {
    const printed = captureIo();
    expect(await main(['migrate', '--print', '--schema', schema], printed.io)).toBe(0);
    expect(printed.stdout()).toContain(`CREATE TABLE IF NOT EXISTS "${schema}".messaging_outbox`);
    for (let run = 0; run < 2; run++) {
      const { io, out } = captureIo();
      expect(
        await main(['migrate', '--database-url', TEST_DATABASE_URL, '--schema', schema], io),
      ).toBe(0);
      expect(out).toEqual([`Inbox and outbox tables are in schema '${schema}'.`]);
    }
    const tables = await sqlOnTestDatabase(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [schema],
    );
    expect(tables.map((t) => t.table_name)).toEqual(['messaging_inbox', 'messaging_outbox']);
  });

  it('says how to fix a bad call', async () => {
    const noUrl = captureIo();
    expect(await main(['migrate'], noUrl.io, { env: {} })).toBe(2);
    expect(noUrl.err[0]).toMatch(/--database-url/);
    const typo = captureIo();
    expect(await main(['migrat'], typo.io)).toBe(2);
    expect(typo.err.join('\n')).toMatch(/unknown command 'migrat'[\s\S]*migrate/);
    const badSchema = captureIo();
    expect(await main(['migrate', '--schema', 'bad name', '--print'], badSchema.io)).toBe(2);
    expect(badSchema.err.join('\n')).toMatch(/plain identifier/);
    expect(badSchema.out).toEqual([]);
  });
});
