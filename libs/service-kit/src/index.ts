/** Start-up helpers shared by the sample services. */
export { startHybridApp, type HybridAppOptions } from './hybrid-app';
export { runService } from './run-service';
export {
  DEFAULT_BROKER_URL,
  serviceConfigFromEnv,
  type ServiceConfig,
  type ServiceEnvSpec,
} from './service-config';
export { Database, type DatabaseOptions } from './database';
export { OperationsModule } from './operations.module';
export {
  BasicAuthGuard,
  basicCredentials,
  type DashboardAccess,
  dashboardAccessFromEnv,
  logDashboardAccess,
} from './dashboard-access';
