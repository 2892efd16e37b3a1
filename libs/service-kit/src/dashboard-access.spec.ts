import { UnauthorizedException, type ExecutionContext } from '@nestjs/common';
import { BasicAuthGuard, basicCredentials, dashboardAccessFromEnv } from './dashboard-access';

const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;

describe('dashboard access of the sample services', () => {
  it.each([
    [{}, { public: true }],
    [{ DASHBOARD_PASSWORD: '' }, { public: true }],
    [{ DASHBOARD_PASSWORD: 's3cret' }, { user: 'admin', password: 's3cret' }],
    [
      { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'p:w' },
      { user: 'ops', password: 'p:w' },
    ],
  ])('reads %j as %j', (env, access) => {
    expect(dashboardAccessFromEnv(env)).toEqual(access);
  });

  it.each([
    [basic('ops:p:w'), { user: 'ops', password: 'p:w' }],
    [basic('ops:'), { user: 'ops', password: '' }],
    [`basic ${Buffer.from('a:b').toString('base64')}`, { user: 'a', password: 'b' }],
    [basic('no-colon'), undefined],
    ['Bearer abc', undefined],
    [undefined, undefined],
    [42, undefined],
  ])('reads the Authorization header %j', (header, credentials) => {
    expect(basicCredentials(header)).toEqual(credentials);
  });

  function contextWith(authorization: string | undefined) {
    const headers: Record<string, string> = {};
    const context = {
      switchToHttp: () => ({
        getRequest: () => ({ headers: authorization ? { authorization } : {} }),
        getResponse: () => ({ header: (name: string, value: string) => (headers[name] = value) }),
      }),
    } as unknown as ExecutionContext;
    return { context, headers };
  }

  it('lets the right user in and asks the browser for credentials otherwise', () => {
    const guard = new BasicAuthGuard({ user: 'ops', password: 's3cret' });
    expect(guard.canActivate(contextWith(basic('ops:s3cret')).context)).toBe(true);
    for (const wrong of [basic('ops:nope'), basic('root:s3cret'), undefined]) {
      const { context, headers } = contextWith(wrong);
      expect(() => guard.canActivate(context)).toThrow(UnauthorizedException);
      expect(headers['WWW-Authenticate']).toMatch(/^Basic realm=/);
    }
  });
});
