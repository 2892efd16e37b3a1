/**
 * `nest-messaging/dashboard`: the web page of an app's messaging (`MessagingDashboardModule`), and
 * the JSON its page reads, for those who build their own. An entry point of its own, so that apps
 * without a dashboard load none of it.
 */
export { MessagingDashboardModule } from './messaging-dashboard.module';
export type { DashboardRequest, MessagingDashboardOptions } from './dashboard-options';
export type {
  DashboardConnection,
  DashboardHandler,
  DashboardJob,
  DashboardOverview,
  DeadLetterDetail,
  DeadLetterGroup,
  DeadLetterGroups,
  DeadLetterSummary,
} from './dashboard-api';
export { CSRF_HEADER } from './dashboard-api';
