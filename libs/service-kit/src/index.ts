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
  DASHBOARD_PATH,
  type DashboardAccess,
  dashboardAccessFromEnv,
  logDashboardAccess,
  sampleDashboard,
} from './dashboard-access';
