/**
 * The broker secret formats the relay accepts (docs/deploy.md).
 */
import { describe, expect, it } from "vitest";
import { brokerUrlFromSecret } from "../../functions/shared/broker-url.js";
import { ConfigurationError } from "../../sdk/errors.js";

describe("brokerUrlFromSecret", () => {
  it("takes a bare amqps URL as is", () => {
    expect(brokerUrlFromSecret(" amqps://u:p@mq.example:5671/v \n")).toBe("amqps://u:p@mq.example:5671/v");
  });

  it("takes {url}", () => {
    expect(brokerUrlFromSecret('{"url": "amqp://u:p@h:5672//"}')).toBe("amqp://u:p@h:5672//");
  });

  it("builds an amqps URL from Amazon MQ style fields, escaping the password", () => {
    expect(brokerUrlFromSecret('{"username":"u","password":"p@ss/w:rd","host":"b-1.mq.eu-west-1.on.aws"}')).toBe(
      "amqps://u:p%40ss%2Fw%3Ard@b-1.mq.eu-west-1.on.aws:5671/%2F",
    );
  });

  it("refuses anything else without echoing the secret", () => {
    const err = (() => {
      try {
        brokerUrlFromSecret("hunter2-not-a-url");
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).not.toContain("hunter2");
  });
});
