import { dropSchema, TEST_DATABASE_URL, uniqueSchema } from '../../testing/postgres.fixture';
import { runStoreContract } from '../../testing/store-contract';
import { PostgresMessageStore } from './postgres.store';

runStoreContract('postgres', async () => {
  const schema = uniqueSchema();
  const store = new PostgresMessageStore({
    connectionString: TEST_DATABASE_URL,
    schema,
    migrate: true,
  });
  await store.init();
  const dispose = async (): Promise<void> => {
    await store.close();
    await dropSchema(schema);
  };
  return { store, dispose };
});
